"""The scenario language: statements, times, windows, and errors that name the position."""

from __future__ import annotations

import pytest

from hagate.simulate.scenario import (
    Crash,
    Fail,
    Heal,
    Loss,
    Partition,
    ScenarioError,
    Start,
    Stop,
    parse,
    parse_time,
)

NAMES = {"node1": {"chk_httpd", "eth0"}, "node2": {"chk_httpd", "chk_network", "eth0"}}


def test_the_issue_example() -> None:
    text = (
        "crash node1 at 10s; restart node1 at 30s; fail chk_httpd on node2 from 40s to 60s; "
        "partition at 70s for 5s; loss 30% from 80s to 140s"
    )
    sc = parse(text, NAMES)
    assert sc.steps == (
        Crash("node1", 10.0),
        Start("node1", 30.0, restart=True),
        Fail("chk_httpd", "node2", 40.0, 60.0),
        Partition((), 70.0, 75.0),
        Loss(0.3, None, 80.0, 140.0),
    )
    assert sc.end is None and sc.duration() == 170.0


def test_lines_comments_groups_and_windows() -> None:
    sc = parse(
        """
        # a comment line
        start node2 at 1m30s        # node2 boots late
        stop node1 at 95
        fail eth0 on node1 at 100s for 500ms
        fail chk_network on node2 at 110s
        partition node1 | node2 from 120s to 2m10s
        heal at 131s
        loss 2.5% on node2 at 140s
        end at 3m
        """,
        NAMES,
    )
    assert sc.steps == (
        Start("node2", 90.0),
        Stop("node1", 95.0),
        Fail("eth0", "node1", 100.0, 100.5),
        Fail("chk_network", "node2", 110.0, None),
        Partition((("node1",), ("node2",)), 120.0, 130.0),
        Heal(131.0),
        Loss(0.025, "node2", 140.0, None),
    )
    assert sc.duration() == 180.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 10.0),
        ("10s", 10.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("2min", 120.0),
        ("s", None),
        ("10x", None),
        ("", None),
    ],
)
def test_times(text: str, seconds: float | None) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("crash node1 ta 10s", 1, 13, "expected 'at', got 'ta'"),
        ("crash node3 at 10s", 1, 7, "unknown node 'node3' (nodes: node1, node2)"),
        ("explode node1 at 1s", 1, 1, "expected a statement (crash, start"),
        ("crash node1 at soon", 1, 16, "expected a time such as 10s, got 'soon'"),
        ("crash node1 at 10s restart", 1, 20, "expected ';' or a new line, got 'restart'"),
        ("crash node1 at", 1, 15, "expected a time such as 10s, got end of line"),
        ("fail chk_network on node1 at 5s", 1, 6, "node1 tracks no script or interface"),
        ("fail eth0 on node1 from 50s to 40s", 1, 29, "end 40s is not after start 50s"),
        ("loss 130% at 5s", 1, 6, "expected a loss rate 0%..100%, got '130%'"),
        ("crash node1 at 1s\npartition node1 | node1 at 5s for 1s", 2, 19, "in two partition"),
        ("crash node1 at 1s; end at 0s", 1, 20, "'end at 0s' is before the last step (1s)"),
        ("crash node1 at 1s = 2", 1, 19, "unexpected character '='"),
    ],
)
def test_errors_name_line_and_column(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse(text, NAMES)
    assert (err.value.line, err.value.col) == (line, col)
    assert message in err.value.message
    shown = str(err.value)
    assert shown.startswith(f"scenario line {line}, column {col}: ")
    assert shown.splitlines()[-1] == "  " + " " * (col - 1) + "^"


def test_names_are_not_checked_without_a_cluster() -> None:
    assert parse("crash anybody at 1s").steps == (Crash("anybody", 1.0),)
