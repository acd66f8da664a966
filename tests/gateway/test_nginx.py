"""Debian's nginx in front of the gateway with upstream keep-alive, as most sites deploy it.

nginx keeps one upstream connection to the gateway and sends every user's request over it,
whatever the Host. Before the per-request front, the gateway bound that connection to the
device of its first Host: requests for dev2 were answered by dev1.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
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
            proxy_set_header Host $host;
        }}
    }}
}}
"""


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


@pytest.mark.skipif(NGINX is None, reason="needs Debian's nginx (apt-get install nginx-light)")
def test_nginx_upstream_keepalive_with_mixed_hosts(pki: Pki, tmp_path: Path) -> None:
    async def main() -> None:
        accepted = [0]
        async with two_devices(pki, accepted) as (_gw, gateway_port):
            port = free_port()
            conf = tmp_path / "nginx.conf"
            conf.write_text(CONF.format(tmp=tmp_path, gateway=gateway_port, port=port))
            assert NGINX is not None
            proc = subprocess.Popen(
                [NGINX, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                await wait_port(port)
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
            finally:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log = (
                    (tmp_path / "error.log").read_text()
                    if (tmp_path / "error.log").exists()
                    else ""
                )
                assert "[emerg]" not in log, log

    asyncio.run(asyncio.wait_for(main(), 30))
