"""Lexing and block structure: comments, quotes, braces on one line, includes."""

from __future__ import annotations

from pathlib import Path

from hagate.config import load
from hagate.config.findings import Reporter
from hagate.config.lexer import Lexer, Token, quoted_words, split_words
from hagate.config.parser import parse_lines


def pieces(tmp_path: Path, text: str | bytes) -> list[list[str]]:
    """The lines keepalived's keyword parser would see, as lists of words."""
    path = tmp_path / "one.conf"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return [[t.text for t in line.tokens] for line in Lexer(Reporter()).read(path)]


def test_comments_and_quotes(tmp_path: Path) -> None:
    assert pieces(tmp_path, "interface eth0  # comment") == [["interface", "eth0"]]
    assert pieces(tmp_path, "priority 100 ! other comment") == [["priority", "100"]]
    assert pieces(tmp_path, 'script "/bin/check arg # not a comment"') == [
        ["script", "/bin/check arg # not a comment"]
    ]
    # keepalived: '#' and '!' start a comment even inside a word; '\#' is a literal '#'
    assert pieces(tmp_path, "virtual_router_id 51#c") == [["virtual_router_id", "51"]]
    assert pieces(tmp_path, "priority 150!c") == [["priority", "150"]]
    assert pieces(tmp_path, "x a\\#b") == [["x", "a#b"]]
    # only double quotes protect comments; single quotes are ordinary characters
    assert pieces(tmp_path, "x 'a # b'") == [["x", "'a"]]
    assert pieces(tmp_path, "unicast_peer { 10.1.1.10 }") == [
        ["unicast_peer"],
        ["{"],
        ["10.1.1.10"],
        ["}"],
    ]
    assert pieces(tmp_path, "vrrp_instance VI{") == [["vrrp_instance", "VI"], ["{"]]
    assert pieces(tmp_path, 'x "a{b}"') == [["x", "a{b}"]]
    # script and notify lines are re-read with quotes and escapes (keepalived.conf(5))
    assert quoted_words("""abcd" efg h jkl "mnop""") == ["abcd efg h jkl mnop"]
    assert quoted_words("""abcd "efg h jkl" mnop""") == ["abcd", "efg h jkl", "mnop"]
    assert quoted_words(r'x "a\"b\tc"') == ["x", 'a"b\tc']
    assert quoted_words('script "open') is None
    assert split_words('script "open') == ([Token("script")], True)


def test_line_ends_like_keepalived(tmp_path: Path) -> None:
    # only \n ends a line; \v \f \r are blanks; \x1c-\x1e, NEL, U+2028/9 are characters
    assert pieces(tmp_path, "priority 100\vnopreempt\r\n") == [["priority", "100", "nopreempt"]]
    assert pieces(tmp_path, "a\x1cb\x1dc\x1e\u0085\u2028\u2029 d\fe\r\r\n") == [
        ["a\x1cb\x1dc\x1e\u0085\u2028\u2029", "d", "e"]
    ]
    # a NUL ends the line (keepalived never sees the rest)
    assert pieces(tmp_path, b"auth_pass ab\0cd\nnext 1\n") == [["auth_pass", "ab"], ["next", "1"]]
    # over 1023 bytes: keepalived's fgets buffer splits the line
    long = "x" * 1023 + "nopreempt"
    assert pieces(tmp_path, long) == [["x" * 1023], ["nopreempt"]]


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
