"""The ban and unban buttons in a real browser (Debian's chromium through the system
chromedriver, nothing downloaded) against the console kit's loopback gateway: an operator bans
an online device for a minute, the row says so and the gateway holds the ban, unban lifts it.
No namespaces: everything is on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.console.kit import PASSWORDS, Stack, stack
from tests.console.test_browser import browser, require_browser, until


@pytest.fixture
def st(tmp_path: Path) -> Iterator[Stack]:
    require_browser()
    with stack(tmp_path, token=True) as s:
        yield s


def test_an_operator_bans_and_unbans_from_the_page(st: Stack) -> None:
    st.start_agent("dev1")
    row = "document.querySelector('#devices tr[data-device=\"dev1\"]')"
    state = f"{row}.children[1].textContent"
    bans = st.gateway.tunnel.bans
    loop = st.gateway.loop
    assert loop is not None
    with browser() as driver:
        driver.get(st.origin + "/")
        until(driver, "document.body.dataset.state === 'login'", 10, "the login form")
        driver.find_element("id", "login-user").send_keys("ops")
        driver.find_element("id", "login-password").send_keys(PASSWORDS["ops"])
        driver.find_element("id", "login-submit").click()
        until(driver, "document.body.dataset.state === 'app'", 10, "the app")
        driver.get(st.origin + "/#devices")
        until(driver, f"{row} && {row}.dataset.online === 'true'", 10, "dev1 online")
        driver.execute_script("window.prompt = () => '1'; window.confirm = () => true;")
        driver.execute_script(f"{row}.querySelector('button.ban').click()")
        until(driver, f"{row} && {state} === 'banned 1 min'", 10, "dev1 banned")
        ban = bans.get("dev1", loop.time())
        assert ban is not None and ban.by == "password:ops" and ban.until - loop.time() <= 60
        assert "dev1" not in st.gateway.sessions
        driver.execute_script(f"{row}.querySelector('button.unban').click()")
        until(driver, f"{row} && {state} !== 'banned 1 min'", 10, "dev1 unbanned")
        assert driver.execute_script(f"return !{row}.querySelector('button.unban')")
        assert bans.get("dev1", loop.time()) is None
    audit = (st.tmp / "audit.log").read_text()
    assert '"action":"kick-ban"' in audit and '"ban":60' in audit and '"action":"unban"' in audit
    # the agent itself comes back when the wait it was told ends (at most a minute: not here)
