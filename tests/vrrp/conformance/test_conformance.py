"""Replay the conformance scenarios (*.txt here) against VrrpMachine and diff the outputs.

Scenario format (one instance; times in seconds):

    # comment lines, kept when regenerating
    params vrid=51 priority=200 primary=10.1.1.10 vips=10.1.1.100 [key=value ...]
    at 0 start
      > RunNotify BACKUP                       (expected actions, in order)
      > StateChanged INITIALIZE -> BACKUP: ...
      = BACKUP priority 200 timer 3.21875      (state, effective priority, next deadline)
    at 1 advert from 10.1.1.5 priority 255 [interval CS] [vrid N] [version V]
    at 4.5 timer | track NAME ok|failed | shutdown | vip_lost ADDRESS

params keys: the VrrpParams fields (primary, vips, state, strict for strict_rfc, and
track=NAME:WEIGHT[:reverse], repeatable). Regenerate expected outputs after a deliberate
behaviour change with ``python tests/vrrp/conformance/test_conformance.py --regen`` and
review the diff.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from hagate.vrrp.advert import Advert
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.tracking import TrackedItem

HERE = Path(__file__).parent
SCENARIOS = sorted(HERE.glob("*.txt"))

_BOOL = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_FLOAT = {"advert_int", "preempt_delay", "garp_master_delay", "garp_master_refresh"}
_FLOAT |= {"garp_lower_prio_delay"}
_INT = {"vrid", "version", "priority", "garp_master_repeat", "garp_master_refresh_repeat"}
_INT |= {"garp_lower_prio_repeat", "down_timer_adverts"}
_FLAGS = {"nopreempt", "lower_prio_no_advert", "higher_prio_send_advert"}


@dataclass
class Step:
    comments: list[str]
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    header: list[str]
    params_line: str
    steps: list[Step]


def parse(text: str) -> Scenario:
    header: list[str] = []
    params_line = ""
    steps: list[Step] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            (pending if params_line else header).append(line)
        elif line.startswith("params "):
            params_line = line
        elif line.startswith("at "):
            steps.append(Step(pending, line))
            pending = []
        elif line.startswith((">", "=")):
            steps[-1].expected.append(line)
        else:
            raise ValueError(f"unparsable line: {raw!r}")
    return Scenario(header, params_line, steps)


def build_params(line: str) -> VrrpParams:
    kw: dict[str, Any] = {}
    tracked: list[TrackedItem] = []
    for word in line.split()[1:]:
        key, _, value = word.partition("=")
        if key == "primary":
            kw["primary_address"] = ip_address(value)
        elif key == "vips":
            kw["vips"] = tuple(ip_address(v) for v in value.split(","))
        elif key == "state":
            kw["start_state"] = State[value]
        elif key == "strict":
            kw["strict_rfc"] = _BOOL[value]
        elif key == "track":
            name, weight, *rest = value.split(":")
            tracked.append(TrackedItem(name, int(weight), reverse="reverse" in rest))
        elif key in _FLAGS:
            kw[key] = _BOOL[value]
        elif key in _FLOAT:
            kw[key] = float(value)
        elif key in _INT:
            kw[key] = int(value)
        else:
            raise ValueError(f"unknown params key {key!r}")
    kw.setdefault("vips", ())
    return VrrpParams(tracked=tuple(tracked), **kw)


def fmt_time(t: float | None) -> str:
    if t is None:
        return "none"
    return f"{t:.6f}".rstrip("0").rstrip(".")


def apply(machine: VrrpMachine, line: str) -> None:
    words = line.split()
    now = float(words[1])
    verb, args = words[2], words[3:]
    if verb == "start":
        machine.start(now)
    elif verb == "timer":
        machine.handle_timer(now)
    elif verb == "shutdown":
        machine.shutdown(now)
    elif verb == "vip_lost":
        machine.vip_lost(now, ip_address(args[0]))
    elif verb == "track":
        machine.set_tracked(now, args[0], {"ok": True, "failed": False}[args[1]])
    elif verb == "advert":
        opts = dict(zip(args[2::2], args[3::2], strict=True))
        p = machine.params
        advert = Advert(
            version=int(opts.get("version", p.version)),
            vrid=int(opts.get("vrid", p.vrid)),
            priority=int(opts["priority"]),
            advert_int_cs=int(opts.get("interval", p.advert_int_cs)),
            addresses=p.vips,
        )
        machine.receive_advert(now, advert, ip_address(args[1]))
    else:
        raise ValueError(f"unknown input {verb!r}")


def replay(scenario: Scenario) -> list[Step]:
    machine = VrrpMachine(build_params(scenario.params_line))
    out: list[Step] = []
    for step in scenario.steps:
        apply(machine, step.line)
        lines = [f"> {a.describe()}" for a in machine.actions()]
        lines.append(
            f"= {machine.state} priority {machine.effective_priority}"
            f" timer {fmt_time(machine.get_timer())}"
        )
        out.append(Step(step.comments, step.line, lines))
    return out


def render(scenario: Scenario, steps: list[Step]) -> str:
    lines = [*scenario.header, scenario.params_line, ""]
    for step in steps:
        lines += [*step.comments, step.line, *(f"  {e}" for e in step.expected)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_conformance(path: Path) -> None:
    scenario = parse(path.read_text())
    assert scenario.params_line, f"{path.name}: no params line"
    assert scenario.steps, f"{path.name}: no steps"
    expected = render(scenario, scenario.steps)
    actual = render(scenario, replay(scenario))
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm=""
        )
        pytest.fail(f"{path.name} differs:\n" + "\n".join(diff))


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 10


def test_a_wrong_expectation_is_reported() -> None:
    text = (
        "params vrid=1 priority=100 primary=10.0.0.1 vips=10.0.0.9\n"
        "at 0 start\n  = MASTER priority 100 timer none\n"
    )
    scenario = parse(text)
    assert render(scenario, replay(scenario)) != render(scenario, scenario.steps)


def _regen(paths: list[Path]) -> None:
    for path in paths:
        scenario = parse(path.read_text())
        path.write_text(render(scenario, replay(scenario)))
        print(f"regenerated {path.name}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--regen"]:
        sys.exit("usage: test_conformance.py --regen [scenario.txt ...]")
    _regen([Path(p) for p in sys.argv[2:]] or SCENARIOS)
