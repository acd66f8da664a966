"""The scenario language: what fails when, in a few readable statements.

    crash node1 at 10s; restart node1 at 30s; stop node2 at 45s
    fail chk_httpd on node2 from 40s to 60s      # a vrrp_script (or interface) by name
    partition at 70s for 5s                      # every node alone; or: partition a | b,c ...
    loss 30% from 80s to 140s                    # every node's adverts; or: loss 30% on a ...
    reload node1 with node1-new.conf at 50s       # SIGHUP with another keepalived.conf
    end at 160s

Statements are separated by ``;`` or new lines; ``#`` starts a comment. Times are seconds
(``10``, ``10s``, ``1.5s``, ``500ms``, ``2m``, ``1m30s``). Errors name line and column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z0-9_.:/%@+-]+")
_TIME_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|min|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}
KEYWORDS = (
    *("crash", "start", "restart", "stop", "reload", "fail", "partition", "heal", "loss"),
    *("write", "end"),
)


class ScenarioError(ValueError):
    """Bad scenario text; ``str()`` names the position and shows it."""

    def __init__(self, message: str, source: str, line: int, col: int) -> None:
        self.message, self.line, self.col = message, line, col
        text = source.splitlines()[line - 1] if source.splitlines()[line - 1 : line] else ""
        super().__init__(
            f"scenario line {line}, column {col}: {message}\n  {text}\n  {' ' * (col - 1)}^"
        )


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, sep (; or newline), comma, bar, eof
    text: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Crash:
    """Power loss: no priority-0 advert, the VIPs vanish with the node."""

    node: str
    at: float


@dataclass(frozen=True, slots=True)
class Start:
    """Boot (or, when running, restart: graceful stop then boot, like systemctl restart).

    A node whose first step is ``start`` (not ``restart``) stays down until then."""

    node: str
    at: float
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """Graceful stop (SIGTERM): the master sends priority 0 and releases the VIPs."""

    node: str
    at: float


@dataclass(frozen=True, slots=True)
class Reload:
    """SIGHUP after ``config`` replaced the node's keepalived.conf: applied in place
    (VrrpMachine.reconfigure, as the daemon does), each master staying master unless the
    new settings demand otherwise."""

    node: str
    at: float
    config: str  # the new file (relative: to the working directory, like the configs)


@dataclass(frozen=True, slots=True)
class Fail:
    """A tracked script fails / an interface is down, from ``start`` to ``end`` (None: on)."""

    item: str
    node: str
    start: float
    end: float | None


@dataclass(frozen=True, slots=True)
class Write:
    """A number written to a track_file at ``at`` (it stays there, across restarts too)."""

    value: int
    item: str
    node: str
    at: float


@dataclass(frozen=True, slots=True)
class Partition:
    """``groups`` hear only each other; empty: every node alone."""

    groups: tuple[tuple[str, ...], ...]
    start: float
    end: float | None


@dataclass(frozen=True, slots=True)
class Heal:
    at: float


@dataclass(frozen=True, slots=True)
class Loss:
    """Lose ``rate`` (0..1) of the adverts sent by ``node`` (None: every node)."""

    rate: float
    node: str | None
    start: float
    end: float | None


Step = Crash | Start | Stop | Reload | Fail | Write | Partition | Heal | Loss


@dataclass(frozen=True, slots=True)
class Scenario:
    text: str
    steps: tuple[Step, ...]
    end: float | None = None  # `end at T`; None: chosen from the last step

    def last_time(self) -> float:
        times = [0.0]
        for step in self.steps:
            if isinstance(step, Crash | Start | Stop | Reload | Heal | Write):
                times.append(step.at)
            else:
                times.append(step.start if step.end is None else step.end)
        return max(times)

    def duration(self, margin: float = 30.0) -> float:
        return self.end if self.end is not None else self.last_time() + margin


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    for lineno, line in enumerate(source.splitlines() or [""], start=1):
        col = 0
        while col < len(line):
            ch = line[col]
            if ch == "#":
                break
            if ch.isspace():
                col += 1
                continue
            if ch in ";,|":
                kind = {";": "sep", ",": "comma", "|": "bar"}[ch]
                tokens.append(Token(kind, ch, lineno, col + 1))
                col += 1
                continue
            m = _WORD.match(line, col)
            if m is None:
                raise ScenarioError(f"unexpected character {ch!r}", source, lineno, col + 1)
            tokens.append(Token("word", m.group(), lineno, col + 1))
            col = m.end()
        tokens.append(Token("sep", "end of line", lineno, len(line) + 1))
    last = tokens[-1]
    tokens.append(Token("eof", "end of scenario", last.line, last.col))
    return tokens


def parse_time(text: str) -> float | None:
    """``10``, ``10s``, ``1.5s``, ``500ms``, ``2m``, ``1m30s``, ``1h`` -> seconds, else None."""
    pos, total = 0, 0.0
    while pos < len(text):
        m = _TIME_PART.match(text, pos)
        if m is None or m.end() == pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if text else None


class _Parser:
    def __init__(self, source: str, names: Mapping[str, set[str]] | None) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0
        self.names = names  # host -> its tracked item names; None: not checked
        self.reloaded: set[str] = set()  # nodes with a reload: their items checked later

    # ---- token helpers ---------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> ScenarioError:
        tok = tok or self.peek()
        return ScenarioError(message, self.source, tok.line, tok.col)

    def word(self, what: str) -> Token:
        tok = self.peek()
        if tok.kind != "word":
            raise self.error(f"expected {what}, got {_show(tok)}")
        return self.take()

    def keyword(self, *words: str) -> str:
        tok = self.peek()
        if tok.kind != "word" or tok.text.lower() not in words:
            raise self.error(f"expected {' or '.join(repr(w) for w in words)}, got {_show(tok)}")
        self.take()
        return tok.text.lower()

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() in words

    def time(self, what: str = "a time such as 10s") -> float:
        tok = self.word(what)
        value = parse_time(tok.text.lower())
        if value is None:
            raise self.error(f"expected {what}, got {tok.text!r}", tok)
        return value

    def node(self) -> str:
        tok = self.word("a node name")
        if self.names is not None and tok.text not in self.names:
            known = ", ".join(self.names) or "none"
            raise self.error(f"unknown node {tok.text!r} (nodes: {known})", tok)
        return tok.text

    # ---- grammar ---------------------------------------------------------------------

    def parse(self) -> Scenario:
        steps: list[Step] = []
        end: float | None = None
        end_tok = self.tokens[0]
        while self.peek().kind != "eof":
            if self.peek().kind == "sep":
                self.take()
                continue
            tok = self.peek()
            if tok.kind != "word" or tok.text.lower() not in KEYWORDS:
                raise self.error(f"expected a statement ({', '.join(KEYWORDS)}), got {_show(tok)}")
            verb = self.take().text.lower()
            if verb == "end":
                end_tok = tok
                self.keyword("at")
                end = self.time()
            else:
                steps.append(self.statement(verb))
            if self.peek().kind not in ("sep", "eof"):
                raise self.error(f"expected ';' or a new line, got {_show(self.peek())}")
        scenario = Scenario(self.source, tuple(steps), end)
        if end is not None and scenario.last_time() > end:
            raise self.error(
                f"'end at {end:g}s' is before the last step ({scenario.last_time():g}s)",
                end_tok,
            )
        return scenario

    def statement(self, verb: str) -> Step:
        if verb in ("crash", "start", "restart", "stop"):
            node = self.node()
            self.keyword("at")
            at = self.time()
            if verb == "crash":
                return Crash(node, at)
            return Stop(node, at) if verb == "stop" else Start(node, at, verb == "restart")
        if verb == "reload":
            node = self.node()
            self.keyword("with")
            config = self.word("the new config file").text
            self.keyword("at")
            self.reloaded.add(node)
            return Reload(node, self.time(), config)
        if verb == "heal":
            self.keyword("at")
            return Heal(self.time())
        if verb == "write":
            tok = self.word("a number such as 2")
            if re.fullmatch(r"-?\d+", tok.text) is None:
                raise self.error(f"expected a whole number to write, got {tok.text!r}", tok)
            self.keyword("to")
            item, node = self.item_on_node("a track_file name")
            self.keyword("at")
            return Write(int(tok.text), item, node, self.time())
        if verb == "fail":
            item, node = self.item_on_node("a script or interface name")
            start, stop = self.window()
            return Fail(item, node, start, stop)
        if verb == "partition":
            groups = self.groups()
            start, stop = self.window()
            return Partition(groups, start, stop)
        # loss
        tok = self.word("a loss rate such as 30%")
        m = re.fullmatch(r"(\d+(?:\.\d+)?)%", tok.text)
        if m is None or float(m.group(1)) > 100:
            raise self.error(f"expected a loss rate 0%..100%, got {tok.text!r}", tok)
        sender: str | None = None
        if self.at_word("on"):
            self.take()
            sender = self.node()
        start, stop = self.window()
        return Loss(float(m.group(1)) / 100, sender, start, stop)

    def item_on_node(self, what: str) -> tuple[str, str]:
        """``ITEM on NODE``, the item checked against what the node tracks."""
        item_tok = self.word(what)
        self.keyword("on")
        node = self.node()
        checked = self.names is not None and node not in self.reloaded
        if checked and self.names is not None and item_tok.text not in self.names[node]:
            known = ", ".join(sorted(self.names[node])) or "none"
            raise self.error(
                f"{node} tracks no script or interface {item_tok.text!r} (tracked: {known})",
                item_tok,
            )
        return item_tok.text, node

    def groups(self) -> tuple[tuple[str, ...], ...]:
        if self.at_word("at", "from"):
            return ()
        groups: list[tuple[str, ...]] = []
        current: list[str] = []
        seen: set[str] = set()
        while True:
            tok = self.peek()
            name = self.node()
            if name in seen:
                raise self.error(f"node {name!r} is in two partition groups", tok)
            seen.add(name)
            current.append(name)
            if self.peek().kind not in ("comma", "bar"):
                break
            if self.take().kind == "bar":
                groups.append(tuple(current))
                current = []
        groups.append(tuple(current))
        return tuple(groups)

    def window(self) -> tuple[float, float | None]:
        """``at T [for D | to T]`` or ``from T [to T | for D]``."""
        self.keyword("at", "from")
        start = self.time()
        stop: float | None = None
        if self.at_word("for"):
            self.take()
            stop = start + self.time("a duration such as 5s")
        elif self.at_word("to", "until"):
            tok = self.take()
            stop = self.time()
            if stop <= start:
                raise self.error(f"end {stop:g}s is not after start {start:g}s", tok)
        return start, stop


def _show(tok: Token) -> str:
    return tok.text if tok.kind in ("sep", "eof") and len(tok.text) > 1 else repr(tok.text)


def parse(source: str, names: Mapping[str, set[str]] | None = None) -> Scenario:
    """Parse scenario text; with ``names`` (host -> tracked items) check every name."""
    return _Parser(source, names).parse()
