"""/healthz answers at once, from its own thread, and tells a stalled event loop apart."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

from hagate.cli import main

from .kit import Pki, gateway_config, running_gateway


def _get(url: str) -> tuple[int, dict[str, object], float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read()), time.monotonic() - t0
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), time.monotonic() - t0


def test_health_and_stalled_loop(pki: Pki) -> None:
    async def main_() -> None:
        async with running_gateway(gateway_config(pki)) as gw:
            host, port = gw.addresses["admin"]
            url = f"http://{host}:{port}/healthz"
            await asyncio.sleep(0.3)
            code, body, _ = await asyncio.to_thread(_get, url)
            assert code == 200 and body["ok"] is True and body["agents"] == 0
            assert await asyncio.to_thread(main, ["gateway", "check", "--url", url, "-q"]) == 0
            # Wedge the event loop: the admin thread still answers at once, with 503.
            fut = asyncio.get_running_loop().run_in_executor(None, _probe_later, url)
            time.sleep(2.6)  # blocks the loop on purpose
            code, body, took = await fut
            assert code == 503 and body["ok"] is False, body
            assert took < 0.5
            await asyncio.sleep(0.3)
            code, _, _ = await asyncio.to_thread(_get, url)
            assert code == 200  # the loop turns again
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as r:
                assert b"hagate_agents_connected 0" in r.read()

    asyncio.run(main_())


def _probe_later(url: str) -> tuple[int, dict[str, object], float]:
    time.sleep(2.3)
    return _get(url)
