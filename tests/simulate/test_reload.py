"""``reload NODE with FILE at T`` in ``hagate simulate``: the new config applied through
VrrpMachine.reconfigure, as the daemon applies a SIGHUP in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.simulate.test_simulate import CHK, becomes, conf, conf_text, run

from hagate.simulate.cluster import ClusterError
from hagate.simulate.scenario import ScenarioError, parse
from hagate.vrrp.state import State


def pair(tmp_path: Path) -> tuple[str, str]:
    a = conf(tmp_path / "a.conf", priority=200, src="10.1.1.5", peer="10.1.1.10")
    b = conf(tmp_path / "b.conf", priority=100, src="10.1.1.10", peer="10.1.1.5")
    return a, b


def two_vips(path: Path, priority: int, src: str, peer: str) -> Path:
    text = conf_text(priority=priority, src=src, peer=peer)
    path.write_text(text.replace("10.1.1.100/24", "10.1.1.100/24\n        10.1.1.101/24"))
    return path


def test_reload_in_place_keeps_the_master_and_applies_the_new_vips(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    new_a = two_vips(tmp_path / "a-new.conf", 150, "10.1.1.5", "10.1.1.10")
    new_b = two_vips(tmp_path / "b-new.conf", 100, "10.1.1.10", "10.1.1.5")
    steps = f"reload b with {new_b} at 9.5s; reload a with {new_a} at 10s; end at 20s"
    result, found = run([a, b], steps)
    assert becomes(result, "a", State.MASTER) and len(result.link.transitions("a")) == 2
    assert becomes(result, "b", State.MASTER) == []
    assert result.final()["a"].priority == 150
    assert {str(v) for v in result.final()["a"].vips} == {"10.1.1.100", "10.1.1.101"}
    events = [e.text for e in result.link.timeline if e.node == "a" and e.kind == "event"]
    assert "scenario: reload with " + str(new_a) in events and "reload" in events
    assert not [v for v in found if v.kind == "split_brain"]


def test_new_vips_reloaded_on_one_side_only_split_the_brain(tmp_path: Path) -> None:
    """keepalived's address check: the backup discards adverts whose VIP list is not its
    own, so reloading only the master with a new VIP makes the backup master too."""
    a, b = pair(tmp_path)
    new_a = two_vips(tmp_path / "a-new.conf", 150, "10.1.1.5", "10.1.1.10")
    result, found = run([a, b], f"reload a with {new_a} at 10s; end at 20s")
    took = becomes(result, "b", State.MASTER)
    assert len(took) == 1 and 12.5 < took[0] < 13.1, took
    discards = {e.text for e in result.link.timeline if e.kind == "discard" and e.node == "b"}
    assert any("address list mismatch" in d for d in discards)
    assert [v for v in found if v.kind == "split_brain"]


def test_reload_below_the_backup_hands_over_by_preemption(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    low = tmp_path / "a-low.conf"
    low.write_text(conf_text(priority=50, src="10.1.1.5", peer="10.1.1.10"))
    result, _ = run([a, b], f"reload a with {low} at 10s; end at 20s")
    took = becomes(result, "b", State.MASTER)
    # a's advert at 50 (sent at once) is lower than b's 100: b (preempting) discards it, as
    # RFC 9568 §6.4.2 says, and takes over when its down timer from a's last 200 runs out
    assert len(took) == 1 and 12.0 < took[0] < 13.1, took
    assert result.final()["a"].state == "BACKUP"


def test_reload_adds_a_script_that_starts_running(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    new = tmp_path / "a-chk.conf"
    new.write_text(
        conf_text(
            priority=200,
            src="10.1.1.5",
            peer="10.1.1.10",
            scripts=CHK.replace("WEIGHT", "-150"),
            extra="track_script {\n chk_app\n }",
        )
    )
    result, _ = run([a, b], f"reload a with {new} at 10s; fail chk_app on a from 20s; end at 40s")
    took = becomes(result, "b", State.MASTER)
    # chk_app runs every 3 s from the reload at 10 s; failing from 20 s, fall 3: the third
    # failure (at 28 s) drops a to 50, and b (100, preempting, deaf to a's lower adverts)
    # takes over one down interval after a's last advert at 200
    lowered = [e.time for e in result.link.timeline if e.node == "a" and "200 -> 50" in e.text]
    assert lowered == [28.0], lowered
    assert len(took) == 1 and 30.5 < took[0] < 31.1, took


def test_what_reload_cannot_do_in_place_is_a_clear_error(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    other = tmp_path / "a-vrid.conf"
    other.write_text(conf_text(priority=200, src="10.1.1.5", peer="10.1.1.10", vrid=52))
    with pytest.raises(ClusterError, match="runs VI_52 instead of VI_51"):
        run([a, b], f"reload a with {other} at 10s")
    with pytest.raises(ClusterError, match="no such file"):
        run([a, b], f"reload a with {tmp_path / 'missing.conf'} at 10s")
    same = tmp_path / "a-same.conf"
    same.write_text(Path(a).read_text())
    with pytest.raises(ClusterError, match="fail nope on a: no config of a tracks it"):
        run([a, b], f"reload a with {same} at 10s; fail nope on a from 12s")
    with pytest.raises(ScenarioError, match="expected 'with'"):
        parse("reload a at 10s", {"a": set()})
