"""Debian's nginx in front of the gateway with upstream keep-alive, as most sites deploy it.

nginx keeps one upstream connection to the gateway and sends every user's request over it,
whatever the Host. Before the per-request front, the gateway bound that connection to the
device of its first Host: requests for dev2 were answered by dev1.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .kit import DOMAIN, Pki, free_port
from .test_http_real import two_devices

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream gateway {{
        server 127.0.0.1:{gateway};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;{extra}
        }}
    }}
}}
"""

XFF = "\n            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"


async def wait_port(port: int, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_nginx(tmp: Path, gateway_port: int, extra: str = "") -> AsyncIterator[int]:
    """Debian's nginx on a free loopback port, proxying to ``gateway_port`` over upstream
    keep-alive (``extra``: more proxy directives, e.g. XFF); stopped, and its error log
    checked for [emerg], on the way out."""
    assert NGINX is not None
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(CONF.format(tmp=tmp, gateway=gateway_port, port=port, extra=extra))
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log = (tmp / "error.log").read_text() if (tmp / "error.log").exists() else ""
        assert "[emerg]" not in log, log


@pytest.mark.skipif(NGINX is None, reason="needs Debian's nginx (apt-get install nginx-light)")
def test_nginx_upstream_keepalive_with_mixed_hosts(pki: Pki, tmp_path: Path) -> None:
    async def main() -> None:
        accepted = [0]
        async with (
            two_devices(pki, accepted) as (_gw, gateway_port),
            running_nginx(tmp_path, gateway_port) as port,
        ):
            order = ["dev1", "dev2", "dev2", "dev1", "dev2", "dev1", "dev1", "dev2"]
            for i, dev in enumerate(order):  # each user on a connection of its own
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(
                    f"GET /{i} HTTP/1.1\r\nHost: {dev}.{DOMAIN}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                reply = await asyncio.wait_for(r.read(), 5)
                w.close()
                assert reply.startswith(b"HTTP/1.1 200"), reply
                assert reply.endswith(f"hello from {dev} /{i}".encode()), reply
            # nginx sent all of them over one kept-alive upstream connection.
            assert accepted[0] == 1

    asyncio.run(asyncio.wait_for(main(), 30))
