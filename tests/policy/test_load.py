"""Bad policy files are refused with FILE:LINE: why, the line of the offending key or table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.policy.conftest import BOB_HASH, POLICY

from hagate.policy import PolicyError, load_policy

Write = Callable[[str], Path]

RULE = """\
[[rule]]
name = "r"
who = ["user:alice"]
devices = ["dev1"]
services = ["ssh"]
routes = ["connect"]
"""


def error(write: Write, text: str) -> str:
    path = write(text)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    message = str(exc.value)
    assert message.startswith(f"{path}:"), message
    return message[len(str(path)) + 1 :]


def test_good_policy_loads(write: Write) -> None:
    policy = load_policy(write(POLICY))
    assert [r.name for r in policy.data.rules][:2] == ["ops-everything", "lobby-web"]
    assert policy.source.endswith("policy.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "1: colour: unknown key"),
        ("[groups]\nops = [1]\n", "2: groups: ops: expected a list of members"),
        ('[groups]\nops = ["alice"]\n', "2: groups: ops: 'alice': say which kind"),
        ('[groups]\n\nops = ["device:dev1"]\n', "3: groups: ops: 'device:dev1': groups hold users"),
        ('[groups]\nops = ["group:x"]\n', "2: groups: ops: 'group:x': groups do not nest"),
        ('[passwords]\nbob = "hunter2"\n', "2: passwords: bob: not an argon2 hash"),
        ('[passwords]\nbob = "$argon2id$v=19$garbage"\n', "2: passwords: bob: a malformed"),
        ("[[rule]]\nwho = []\n", "1: rule #1: name: missing"),
        (RULE.replace('routes = ["connect"]', "routes = []"), "6: rule 'r': routes: empty list"),
        (RULE.replace('routes = ["connect"]\n', ""), "1: rule 'r': routes: missing"),
        (RULE.replace('"connect"', '"ssh"'), "6: rule 'r': routes: unknown route 'ssh'"),
        (RULE.replace('"user:alice"', '"group:opz"'), "3: rule 'r': who: unknown group 'opz'"),
        (RULE.replace('"user:alice"', '"admin:x"'), "3: rule 'r': who: 'admin:x': unknown kind"),
        (RULE.replace('"user:alice"', '"anonymous"'), "3: rule 'r': who: 'anonymous'"),
        (RULE.replace('"dev1"', '"dev[1"'), "4: rule 'r': devices: 'dev[1': '[' without its ']'"),
        (RULE.replace('"ssh"', '"s/h"'), "5: rule 'r': services: 's/h' is not a name pattern"),
        (RULE + 'from = ["10.0.0.1/8"]\n', "7: rule 'r': from: 10.0.0.1/8 has host bits set"),
        (RULE + 'from = ["nowhere"]\n', "7: rule 'r': from:"),
        (RULE + "colour = 1\n", "7: rule 'r': colour: unknown key"),
        (RULE + 'public = "yes"\n', "7: rule 'r': public: expected true or false"),
        (RULE + "public = true\n", "3: rule 'r': who: a public rule admits every user"),
        (RULE.replace('who = ["user:alice"]\n', ""), "1: rule 'r': who: missing"),
        (RULE + "\n" + RULE, "9: rule 'r': name: already used by the rule at line 1"),
        ('[rule]\nname = "x"\n', "1: rule: write each rule as a [[rule]] table"),
        ("[tokens]\nkey = 'k'\n", "2: tokens: key: unknown key"),
        ('realm = "a\\"b"\n', "1: realm:"),
        ("a = [\n1,\n2,,\n]\n", "3: not valid TOML"),
        ('x = "unterminated\n', "1: not valid TOML"),
    ],
)
def test_errors_name_the_line(write: Write, text: str, expected: str) -> None:
    assert error(write, text).startswith(expected)


def test_second_rule_error_names_its_own_line(write: Write) -> None:
    text = RULE + "\n" + RULE.replace('name = "r"', 'name = "s"').replace('"ssh"', '"[x"')
    assert error(write, text).startswith("12: rule 's': services:")


def test_error_line_never_past_the_end(write: Write) -> None:
    assert error(write, "a = 1\nb = [").startswith("2: not valid TOML: Invalid value")
    assert error(write, 'a = 1\nb = "x\n\n').startswith("2: not valid TOML")


def test_plaintext_password_refused_names_the_hint(write: Write) -> None:
    assert "hash-password" in error(write, '[passwords]\nbob = "hunter2"\n')


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"missing\.toml:1: cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_warnings(write: Write) -> None:
    text = f"""\
[passwords]
bob = "{BOB_HASH}"

[[rule]]
name = "all"
who = ["password:bobb", "device:mon"]
devices = ["*"]
services = ["*"]
routes = ["tcp", "http"]
"""
    warnings = load_policy(write(text)).warnings
    assert any(":9: rule 'all': routes: 'tcp' opens nothing" in w for w in warnings)
    assert any(":6: rule 'all': who: no [passwords] entry 'bobb'" in w for w in warnings)
    assert any(":6: rule 'all': who: 'device:mon' on http/tcp" in w for w in warnings)


def test_no_rules_warns(write: Write) -> None:
    assert any("no [[rule]]" in w for w in load_policy(write("")).warnings)


def test_revocations_without_ca_refused(write: Write, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="needs the CA certificate"):
        load_policy(write(RULE), token_revocations=tmp_path / "r.json")


def test_tokens_table_relative_to_the_file(write: Write, pki: Path) -> None:
    path = write('[tokens]\nca = "pki/ca.crt"\n' + RULE)
    policy = load_policy(path)
    assert policy.tokens_enabled
    assert policy.files == (path, path.parent / "pki" / "ca.crt")
    assert not load_policy(write(RULE)).tokens_enabled
