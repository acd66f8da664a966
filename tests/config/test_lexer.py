"""Lexing and block structure: comments, quotes, braces on one line, includes."""

from __future__ import annotations

from pathlib import Path

from hagate.config import load
from hagate.config.findings import Reporter
from hagate.config.lexer import Lexer, split_line
from hagate.config.parser import parse_lines


def texts(line: str) -> list[str]:
    tokens, problem = split_line(line)
    assert problem is None
    return [t.text for t in tokens]


def test_comments_and_quotes() -> None:
    assert texts("interface eth0  # comment") == ["interface", "eth0"]
    assert texts("priority 100 ! other comment") == ["priority", "100"]
    assert texts('script "/bin/check arg # not a comment"') == [
        "script",
        "/bin/check arg # not a comment",
    ]
    assert texts("""abcd" efg h jkl "mnop""") == ["abcd efg h jkl mnop"]
    assert texts("""abcd "efg h jkl" mnop""") == ["abcd", "efg h jkl", "mnop"]
    assert texts(r'x "a\"b\tc"') == ["x", 'a"b\tc']
    assert texts("unicast_peer { 10.1.1.10 }") == ["unicast_peer", "{", "10.1.1.10", "}"]
    assert texts("vrrp_instance VI{") == ["vrrp_instance", "VI", "{"]
    assert split_line('script "open')[1] == 'unterminated " quote'


def test_blocks_on_one_line_and_brace_on_next_line(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text(
        "vrrp_instance A\n{\n interface eth0 virtual_router_id 7\n"
        " virtual_router_id 7\n virtual_ipaddress { 10.0.0.1/24 10.0.0.2 }\n}\n"
    )
    reporter = Reporter()
    tree = parse_lines(Lexer(reporter).read(path), reporter)
    assert [st.keyword for st in tree] == ["vrrp_instance"]
    block = tree[0].block
    assert block is not None
    assert [st.keyword for st in block] == ["interface", "virtual_router_id", "virtual_ipaddress"]
    config, findings = load(path)
    (vi,) = config.vrrp_instances
    # one line in a block is one entry: the second address is taken as options and refused
    assert [str(v.address) for v in vi.virtual_ipaddresses] == ["10.0.0.1"]
    assert any("extra words ignored" in f.message for f in findings)


def test_include_glob_relative_and_loop(tmp_path: Path) -> None:
    sub = tmp_path / "d"
    sub.mkdir()
    (tmp_path / "main.conf").write_text("include d/*.conf\n")
    (sub / "a.conf").write_text(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress { 10.0.0.1 }\n}\ninclude ../main.conf\n"
    )
    config, findings = load(tmp_path / "main.conf")
    assert [i.name for i in config.vrrp_instances] == ["A"]
    assert [Path(p).name for p in config.files] == ["main.conf", "a.conf"]
    (loop,) = findings
    assert loop.keyword == "include" and "loop" in loop.message and loop.line == 6


def test_missing_and_unreadable(tmp_path: Path) -> None:
    config, findings = load(tmp_path / "absent.conf")
    assert config.vrrp_instances == () and config.files == ()
    (f,) = findings
    assert f.keyword == "file" and "cannot read" in f.message and int(f.impact) == 3
    config, findings = load(tmp_path)  # a directory
    assert findings[0].keyword == "file"


def test_binary_garbage_never_raises(tmp_path: Path) -> None:
    path = tmp_path / "bin.conf"
    path.write_bytes(bytes(range(256)) * 4 + b"\n{{{ }}} \xff\xfe")
    load(path)  # findings, never an exception
