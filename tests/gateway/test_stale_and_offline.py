"""A node that lost the VIP notices it; an offline device is "not connected", not a 403.

The address check a node uses to drop sessions that came in on an address it no longer
has; the name the policy gives an offline device's web UI (so a user the policy lets in is
told "not connected"), which depends on the policy alone and so tells a client the policy
refuses nothing about which device names exist.
"""

from __future__ import annotations

from pathlib import Path

from hagate.gateway.session import address_is_local, offline_default_service
from hagate.policy.load import parse_policy

POLICY = """
[[rule]]
name = "fleet-web"
devices = ["fd*"]
services = ["web"]
routes = ["http"]
public = true

[[rule]]
name = "ops"
who = ["user:alice"]
devices = ["dev*"]
services = ["ssh"]
routes = ["connect"]
"""


def test_address_check_tells_a_removed_address_from_a_local_one() -> None:
    assert address_is_local("127.0.0.1")
    assert address_is_local("::1")
    assert not address_is_local("192.0.2.77")  # TEST-NET-1: never on this host (bind only)


def test_offline_default_service_is_named_by_the_policy_alone(tmp_path: Path) -> None:
    data, _ = parse_policy(POLICY, tmp_path / "policy.toml")
    # fd* has a web rule naming "web": any fd name, existing or not, gets the same answer
    assert offline_default_service(data, "fd7") == "web"
    assert offline_default_service(data, "fd-no-such-device") == "web"
    # dev1's only rule is by connect: no web name, the gateway's guess ("http") stays
    assert offline_default_service(data, "dev1") is None


def test_offline_device_default_service_is_not_connected_through_the_gateway(
    tmp_path: Path,
) -> None:
    """The fleet rule names the service "web"; an offline device's default was a 403."""
    import asyncio

    from .kit import DOMAIN, gateway_config, make_pki, running_gateway
    from .test_access import request

    pki = make_pki(tmp_path / "pki", devices=("fd1",))
    policy = POLICY + '\n[[rule]]\nname = "dev-web"\nwho = ["user:alice"]\ndevices = ["dev1"]\n'
    policy += 'services = ["*"]\nroutes = ["http"]\n'

    async def main() -> None:
        async with running_gateway(gateway_config(pki, policy=policy)) as gw:
            hport = gw.addresses["http"][1]
            status, _h, body = await request(hport, f"fd1.{DOMAIN}")
            assert status == 404 and b"not connected" in body
            assert (await request(hport, f"fd99.{DOMAIN}"))[0] == 404  # same for any fd name
            # the policy refuses the anonymous client dev1 and dev9 whatever their state
            assert (await request(hport, f"dev1.{DOMAIN}"))[0] == 403
            assert (await request(hport, f"dev9.{DOMAIN}"))[0] == 403
            assert gw.metrics.stream_failures["offline"] == 2

    asyncio.run(main())
