"""State-machine throughput: inputs per second on one core (no I/O, no simulator).

    python bench/machine.py [--quick] [--seconds N]

Measures receive_advert() on a BACKUP (the hot path of every backup) and handle_timer()
ticks on a MASTER (each emits a SendAdvert that is drained).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address

from hagate.vrrp.advert import Advert
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State

VIP = IPv4Address("10.1.1.100")
MASTER_ADDR = IPv4Address("10.1.1.5")


def _backup() -> Callable[[int], None]:
    m = VrrpMachine(
        VrrpParams(vrid=51, primary_address=IPv4Address("10.1.1.10"), vips=(VIP,), priority=200)
    )
    m.start(0.0)
    m.actions()
    advert = Advert(2, 51, 255, 100, (VIP,))

    def run(n: int) -> None:
        rx = m.receive_advert
        t = 1.0
        for _ in range(n):
            rx(t, advert, MASTER_ADDR)
            t += 1.0
        assert m.state is State.BACKUP

    return run


def _master() -> Callable[[int], None]:
    m = VrrpMachine(
        VrrpParams(
            vrid=51, primary_address=MASTER_ADDR, vips=(VIP,), priority=255, garp_master_delay=0
        )
    )
    m.start(0.0)
    m.actions()

    def run(n: int) -> None:
        tick, drain, timer = m.handle_timer, m.actions, m.get_timer
        for _ in range(n):
            tick(timer() or 0.0)
            drain()
        assert m.state is State.MASTER

    return run


def measure(make: Callable[[], Callable[[int], None]], seconds: float) -> float:
    """Inputs per second, best of repeated batches within ``seconds``."""
    run = make()
    run(1000)  # warm-up
    batch, best = 20_000, 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        run(batch)
        best = max(best, batch / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="about 1 s in total")
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    args = ap.parse_args(argv)
    seconds = 0.4 if args.quick else args.seconds
    print(f"python {sys.version.split()[0]}, one core, {seconds:g} s per measurement")
    for label, make in (
        ("receive_advert on a BACKUP", _backup),
        ("handle_timer tick on a MASTER", _master),
    ):
        rate = measure(make, seconds)
        print(f"{label:<32} {rate:>12,.0f} inputs/s  ({1e6 / rate:.2f} us each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
