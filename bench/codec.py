"""Benchmark the VRRP codec on one core: adverts decoded+validated per second, encodes per second.

Usage: python bench/codec.py [--quick] [--seconds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hagate.vrrp.advert import MULTICAST_V4, MULTICAST_V6, Advert, AuthType
from hagate.vrrp.packet import decode, encode
from hagate.vrrp.receive import Accepted, ReceiveParams, check_packet

SRC4 = IPv4Address("10.1.1.5")
SRC6 = IPv6Address("fe80::9012:a0ff:fe1f:3026")
VIPS4 = (IPv4Address("10.1.1.100"), IPv4Address("10.1.1.101"))
VIPS6 = (IPv6Address("fd00::100"), IPv6Address("fd00::101"))

CASES = {
    "v2 IPv4 PASS": (
        Advert(2, 51, 250, 100, VIPS4, AuthType.PASS, b"secret12"),
        ReceiveParams(2, 51, 100, VIPS4, AuthType.PASS, b"secret12"),
        SRC4,
        MULTICAST_V4,
    ),
    "v3 IPv4": (
        Advert(3, 51, 250, 100, VIPS4),
        ReceiveParams(3, 51, 100, VIPS4),
        SRC4,
        MULTICAST_V4,
    ),
    "v3 IPv6": (
        Advert(3, 51, 250, 100, VIPS6),
        ReceiveParams(3, 51, 100, VIPS6),
        SRC6,
        MULTICAST_V6,
    ),
}


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` of wall time."""
    batch, done, start = 256, 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 1 s in total (smoke run)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args(argv)
    per = 1.0 / (3 * len(CASES)) if args.quick else args.seconds
    print(f"{'case':<14} {'check_packet/s':>15} {'decode/s':>12} {'encode/s':>12}")
    for name, (advert, params, src, dst) in CASES.items():
        wire = encode(advert, src, dst)
        result = check_packet(params, src, dst, 255, wire)
        if not isinstance(result, Accepted) or result.advert != advert:
            print(f"{name}: benchmark packet not accepted: {result}", file=sys.stderr)
            return 1
        checked = rate(lambda p=params, s=src, d=dst, w=wire: check_packet(p, s, d, 255, w), per)
        decoded = rate(lambda s=src, d=dst, w=wire: decode(w, s, d), per)
        encoded = rate(lambda a=advert, s=src, d=dst: encode(a, s, d), per)
        print(f"{name:<14} {checked:>15,.0f} {decoded:>12,.0f} {encoded:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
