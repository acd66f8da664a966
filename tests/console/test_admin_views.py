"""The gateway admin's device book and paging, pure, at the scale the console must handle."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from hagate.gateway.accesslog import AccessEntry
from hagate.gateway.admin.auth import host_is_local
from hagate.gateway.admin.book import DeviceBook
from hagate.gateway.admin.paging import DeviceQuery
from hagate.tunnel.wire import ServiceKind, ServiceSpec

N = 10_000


class FakeSession:
    def __init__(self, device: str, sid: str) -> None:
        self.device = device
        self.sid = sid
        self.services = {"web": ServiceSpec("web", ServiceKind.HTTP, None, 80)}

    def service(self, name: str | None, kind: Any = None) -> ServiceSpec | None:
        return self.services["web"]


def fake_gateway(n: int) -> Any:
    sessions = {f"dev{i:05d}": FakeSession(f"dev{i:05d}", f"s{i}") for i in range(n)}
    return SimpleNamespace(
        sessions=sessions,
        streams=[],
        access=SimpleNamespace(recent=[]),
        cfg=SimpleNamespace(domain="gw.test", node="n1"),
        tcp=SimpleNamespace(port_of=lambda d, s: None, socks={}),
    )


def entry(device: str, result: str, status: int | None, b: int = 0) -> AccessEntry:
    return AccessEntry(time.time(), "n1", "password:bob", "1.2.3.4", device, "web", "http",
                       result, "r", status, b, 2 * b)  # fmt: skip


def test_ten_thousand_devices_paged_by_name_each_once() -> None:
    gw = fake_gateway(N)
    book = DeviceBook()
    t0 = time.perf_counter()
    records = book.refresh(gw, 100.0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = book.refresh(gw, 101.0)
    again = time.perf_counter() - t0
    assert len(records) == N and book.changes == N
    seen: list[str] = []
    after = ""
    pages = 0
    t0 = time.perf_counter()
    while True:
        page = DeviceQuery(after=after, limit=500).page(records, "n1", 101.0)
        seen += [d["name"] for d in page["devices"]]
        pages += 1
        if page["next"] is None:
            break
        after = page["next"]
    paging = (time.perf_counter() - t0) / pages
    assert seen == sorted(gw.sessions) and pages == N // 500
    one = DeviceQuery(q="DEV0999", limit=50).page(records, "n1", 101.0)
    assert one["matched"] == 10 and one["devices"][0]["name"] == "dev09990"
    assert one["devices"][0]["routes"] == {"web": "dev09990.gw.test"}
    # loose bounds for a loaded 2-core machine: the loop's share stays in milliseconds
    assert first < 0.5 and again < 0.1 and paging < 0.2, (first, again, paging)
    print(f"refresh {N}: first {first * 1e3:.1f} ms, again {again * 1e3:.1f} ms; "
          f"page of 500: {paging * 1e3:.1f} ms")  # fmt: skip


def test_offline_bytes_errors_and_new_sessions() -> None:
    gw = fake_gateway(2)
    book = DeviceBook()
    book.refresh(gw, 10.0)
    gw.access.recent.append(entry("dev00000", "ok", 200, 100))
    gw.access.recent.append(entry("dev00001", "denied: no rule", 403))
    gw.access.recent.append(entry("ghost", "denied: offline", 404))
    recs = {r.name: r for r in book.refresh(gw, 11.0)}
    assert "ghost" not in recs  # refusals do not invent devices
    assert (recs["dev00000"].bytes_in, recs["dev00000"].bytes_out) == (100, 200)
    assert recs["dev00001"].last_error == "denied: no rule (403)"
    book.refresh(gw, 12.0)  # the same entries are not counted twice
    assert recs["dev00000"].bytes_in == 100
    del gw.sessions["dev00001"]
    gw.sessions["dev00000"] = FakeSession("dev00000", "new")
    recs = {r.name: r for r in book.refresh(gw, 13.0)}
    assert recs["dev00001"].online is False and recs["dev00001"].last_seen == 12.0
    assert recs["dev00000"].since == 13.0 and recs["dev00000"].session == "new"
    page = DeviceQuery(status="offline").page(list(recs.values()), "n1", 14.0)
    assert [d["name"] for d in page["devices"]] == ["dev00001"]
    assert page["devices"][0]["session"] is None and page["devices"][0]["age_s"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": ["up"]}, "status"),
        ({"limit": ["x"]}, "number"),
        ({"limit": ["501"]}, "1..500"),
        ({"q": ["a" * 101]}, "longer"),
    ],
)
def test_bad_queries_say_why(query: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeviceQuery.parse(query)


def test_host_is_local() -> None:
    for ok in ("127.0.0.1:9180", "localhost", "[::1]:80", "10.1.1.5", "LOCALHOST:1"):
        assert host_is_local(ok), ok
    for bad in (None, "", "evil.example", "evil.example:9180", "127.0.0.1.nip.io:80"):
        assert not host_is_local(bad), bad
