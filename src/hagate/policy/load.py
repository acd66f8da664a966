"""Read and check a policy file: every mistake is ``FILE:LINE: key: why``, nothing half-loaded.

The file (TOML, the same on both gateway nodes)::

    realm = "hagate"                    # optional: the WWW-Authenticate realm
    [tokens]                            # optional: bearer tokens (paths relative to this file)
    ca = "ca.crt"
    revocations = "revoked-tokens.json"
    [groups]
    ops = ["user:alice", "password:bob", "token:carol"]
    [passwords]
    bob = "$argon2id$v=19$..."
    [[rule]]
    name = "ops-everything"
    who = ["group:ops"]
    devices = ["*"]
    services = ["*"]
    routes = ["http", "https", "connect"]

See docs/policy.md.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hagate.policy.locate import Locator
from hagate.policy.model import (
    PRINCIPAL_NAME_RE,
    RULE_NAME_RE,
    IPNetwork,
    PolicyData,
    PolicyError,
    PrincipalKind,
    RouteKind,
    Rule,
    Who,
)
from hagate.policy.passwords import check_hash

_TOP = {"realm", "tokens", "groups", "passwords", "rule"}
_TOKENS = {"ca", "revocations"}
_RULE = {"name", "who", "devices", "services", "routes", "public", "from"}
_GLOB_RE = re.compile(r"^[A-Za-z0-9._@*?!\[\]-]+$")
_NAMED = {
    k.value: k
    for k in (PrincipalKind.USER, PrincipalKind.PASSWORD, PrincipalKind.TOKEN, PrincipalKind.DEVICE)
}
_TOML_POS = re.compile(r"\(at line (\d+), column \d+\)")  # tomllib's only position


@dataclass(frozen=True, slots=True)
class TokenFiles:
    """``[tokens]`` of the file, resolved against the file's directory."""

    ca: Path | None = None
    revocations: Path | None = None


class _Ctx:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.at = Locator(text)
        self.warnings: list[str] = []

    def error(
        self, why: str, table: str = "", index: int = 0, key: str | None = None
    ) -> PolicyError:
        return PolicyError(f"{self.path}:{self.at.line(table, index, key)}: {why}")

    def warn(self, why: str, table: str = "", index: int = 0, key: str | None = None) -> None:
        self.warnings.append(f"{self.path}:{self.at.line(table, index, key)}: {why}")


def parse_policy(text: str, path: Path) -> tuple[PolicyData, TokenFiles]:
    """Check the policy text; tokens are off here (`load_policy` turns them on)."""
    ctx = _Ctx(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POS.search(str(exc))
        last = max(1, len(text.splitlines()))
        line = int(found.group(1)) if found else last if "end of document" in str(exc) else 1
        line = max(1, min(line, last))
        why = _TOML_POS.sub("", str(exc)).replace("(at end of document)", "").strip()
        raise PolicyError(f"{path}:{line}: not valid TOML: {why}") from None
    for key in doc:
        if key not in _TOP:
            raise ctx.error(f"{key}: unknown key (known: {', '.join(sorted(_TOP))})", key=key)
    realm = doc.get("realm", "hagate")
    if not isinstance(realm, str) or not realm or any(c in realm for c in '"\\\r\n'):
        raise ctx.error("realm: expected a name without quotes or backslashes", key="realm")
    files = _tokens(ctx, doc.get("tokens", {}), path.parent)
    groups = _groups(ctx, doc.get("groups", {}))
    passwords = _passwords(ctx, doc.get("passwords", {}))
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ctx.error("rule: write each rule as a [[rule]] table", "rule")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        rule = _rule(ctx, index, raw, groups, passwords)
        if rule.name in seen:
            raise ctx.error(
                f"rule '{rule.name}': name: already used by the rule at line {seen[rule.name]}",
                "rule",
                index,
                "name",
            )
        seen[rule.name] = rule.line
        rules.append(rule)
    if not rules:
        ctx.warn("no [[rule]]: every request is refused")
    data = PolicyData(
        source=str(path),
        realm=realm,
        groups=groups,
        passwords=passwords,
        rules=tuple(rules),
        warnings=tuple(ctx.warnings),
    )
    return data, files


def _table(ctx: _Ctx, value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.error(f"{name}: expected a [{name}] table", key=name)
    return value


def _tokens(ctx: _Ctx, value: Any, base: Path) -> TokenFiles:
    table = _table(ctx, value, "tokens")
    paths: dict[str, Path] = {}
    for key, item in table.items():
        if key not in _TOKENS:
            raise ctx.error(
                f"tokens: {key}: unknown key (known: ca, revocations)", "tokens", 0, key
            )
        if not isinstance(item, str) or not item:
            raise ctx.error(f"tokens: {key}: expected a file name", "tokens", 0, key)
        paths[key] = base / item
    return TokenFiles(paths.get("ca"), paths.get("revocations"))


def _glob(ctx: _Ctx, text: Any, what: str, table: str, index: int, key: str) -> re.Pattern[str]:
    if not isinstance(text, str) or not _GLOB_RE.match(text):
        raise ctx.error(
            f"{what}: {text!r} is not a name pattern (letters, digits, '._@-' and * ? [...])",
            table,
            index,
            key,
        )
    depth = 0
    for char in text:
        if char == "[":
            if depth:
                raise ctx.error(f"{what}: {text!r}: '[' inside [...]", table, index, key)
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ctx.error(f"{what}: {text!r}: '[' without its ']'", table, index, key)
    return re.compile(fnmatch.translate(text))


def _strings(ctx: _Ctx, value: Any, what: str, table: str, index: int, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ctx.error(f"{what}: expected a list of strings", table, index, key)
    if not value:
        raise ctx.error(f"{what}: empty list", table, index, key)
    return value


def _who(
    ctx: _Ctx,
    text: str,
    what: str,
    table: str,
    index: int,
    key: str,
    groups: dict[str, tuple[Who, ...]] | None,
) -> Who:
    """``*``, ``group:NAME`` (not inside groups) or ``KIND:GLOB``."""
    if text == "*":
        return Who(text, None, re.compile(".*"))
    kind, sep, name = text.partition(":")
    if not sep:
        raise ctx.error(
            f"{what}: {text!r}: say which kind (user:, password:, token:, device:, group:)",
            table,
            index,
            key,
        )
    if kind == "group":
        if groups is None:
            raise ctx.error(f"{what}: {text!r}: groups do not nest", table, index, key)
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise ctx.error(f"{what}: unknown group {name!r} (known: {known})", table, index, key)
        return Who(text, None, re.compile(re.escape(name)), group=name)
    if kind == "anonymous":
        raise ctx.error(f"{what}: {text!r}: use public = true", table, index, key)
    if kind not in _NAMED:
        raise ctx.error(
            f"{what}: {text!r}: unknown kind {kind!r} (user, password, token, device, group)",
            table,
            index,
            key,
        )
    return Who(text, _NAMED[kind], _glob(ctx, name, what, table, index, key))


def _groups(ctx: _Ctx, value: Any) -> dict[str, tuple[Who, ...]]:
    table = _table(ctx, value, "groups")
    groups: dict[str, tuple[Who, ...]] = {}
    for name, members in table.items():
        what = f"groups: {name}"
        if not PRINCIPAL_NAME_RE.match(name):
            raise ctx.error(
                f"{what}: not a group name (letters, digits, '._@-')", "groups", 0, name
            )
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ctx.error(f"{what}: expected a list of members", "groups", 0, name)
        entries = []
        for member in members:
            who = _who(ctx, member, what, "groups", 0, name, None)
            if who.kind is None:
                raise ctx.error(f"{what}: '*' cannot be a member; name who", "groups", 0, name)
            if who.kind is PrincipalKind.DEVICE:
                raise ctx.error(
                    f"{what}: {member!r}: groups hold users; name devices in a rule's who",
                    "groups",
                    0,
                    name,
                )
            entries.append(who)
        groups[name] = tuple(entries)
    return groups


def _passwords(ctx: _Ctx, value: Any) -> dict[str, str]:
    table = _table(ctx, value, "passwords")
    out: dict[str, str] = {}
    for name, hashed in table.items():
        what = f"passwords: {name}"
        if not PRINCIPAL_NAME_RE.match(name):
            raise ctx.error(
                f"{what}: not a user name (letters, digits, '._@-')", "passwords", 0, name
            )
        if not isinstance(hashed, str):
            raise ctx.error(f"{what}: expected an argon2 hash string", "passwords", 0, name)
        why = check_hash(hashed)
        if why:
            raise ctx.error(f"{what}: {why}", "passwords", 0, name)
        out[name] = hashed
    return out


def _rule(
    ctx: _Ctx,
    index: int,
    raw: Any,
    groups: dict[str, tuple[Who, ...]],
    passwords: dict[str, str],
) -> Rule:
    t = "rule"
    if not isinstance(raw, dict):
        raise ctx.error("rule: expected a [[rule]] table", t, index)
    name = raw.get("name")
    if not isinstance(name, str) or not RULE_NAME_RE.match(name):
        got = "missing" if name is None else f"{name!r} is not a rule name (letters, digits, '._-')"
        raise ctx.error(f"rule #{index + 1}: name: {got}", t, index, "name" if name else None)
    w = f"rule '{name}'"
    for key in raw:
        if key not in _RULE:
            known = ", ".join(sorted(_RULE))
            raise ctx.error(f"{w}: {key}: unknown key (known: {known})", t, index, key)
    for key in ("devices", "services", "routes"):
        if key not in raw:
            raise ctx.error(f"{w}: {key}: missing", t, index)
    public = raw.get("public", False)
    if not isinstance(public, bool):
        raise ctx.error(f"{w}: public: expected true or false", t, index, "public")
    who: list[Who] = []
    if "who" in raw:
        for text in _strings(ctx, raw["who"], f"{w}: who", t, index, "who"):
            who.append(_who(ctx, text, f"{w}: who", t, index, "who", groups))
    if public and any(x.kind is not PrincipalKind.DEVICE for x in who):
        raise ctx.error(
            f"{w}: who: a public rule admits every user already; keep only device: entries",
            t,
            index,
            "who",
        )
    if not public and not who:
        raise ctx.error(f"{w}: who: missing (or public = true for an open route)", t, index)
    device_text = _strings(ctx, raw["devices"], f"{w}: devices", t, index, "devices")
    service_text = _strings(ctx, raw["services"], f"{w}: services", t, index, "services")
    devices = [_glob(ctx, d, f"{w}: devices", t, index, "devices") for d in device_text]
    services = [_glob(ctx, s, f"{w}: services", t, index, "services") for s in service_text]
    routes: set[RouteKind] = set()
    for text in _strings(ctx, raw["routes"], f"{w}: routes", t, index, "routes"):
        try:
            routes.add(RouteKind(text))
        except ValueError:
            raise ctx.error(
                f"{w}: routes: unknown route {text!r} (http, https, tcp, connect)",
                t,
                index,
                "routes",
            ) from None
    sources: list[IPNetwork] = []
    source_text: list[str] = []
    if "from" in raw:
        for text in _strings(ctx, raw["from"], f"{w}: from", t, index, "from"):
            try:
                sources.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                raise ctx.error(f"{w}: from: {exc}", t, index, "from") from None
            source_text.append(text)
    line = ctx.at.line(t, index)
    rule = Rule(
        name=name,
        line=line,
        who=tuple(who),
        devices=tuple(devices),
        services=tuple(services),
        routes=frozenset(routes),
        public=public,
        sources=tuple(sources),
        device_text=tuple(device_text),
        service_text=tuple(service_text),
        source_text=tuple(source_text),
    )
    _lint_rule(ctx, index, rule, groups, passwords)
    return rule


def _lint_rule(
    ctx: _Ctx, index: int, rule: Rule, groups: dict[str, tuple[Who, ...]], passwords: dict[str, str]
) -> None:
    w = f"rule '{rule.name}'"
    if RouteKind.TCP in rule.routes and not rule.public:
        ctx.warn(
            f"{w}: routes: 'tcp' opens nothing without public = true (a raw TCP port carries "
            "no credentials; users with certificates use hagate connect)",
            "rule",
            index,
            "routes",
        )
    for who in rule.who:
        name = who.text.partition(":")[2]
        if who.kind is PrincipalKind.PASSWORD and _plain(name) and name not in passwords:
            ctx.warn(f"{w}: who: no [passwords] entry {name!r}", "rule", index, "who")
        if who.kind is PrincipalKind.DEVICE and rule.routes & {RouteKind.HTTP, RouteKind.TCP}:
            ctx.warn(
                f"{w}: who: {who.text!r} on http/tcp: a device certificate is only ever "
                "presented on https and connect",
                "rule",
                index,
                "who",
            )


def _plain(name: str) -> bool:
    return not any(c in name for c in "*?[")
