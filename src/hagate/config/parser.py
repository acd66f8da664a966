"""Lines to a tree of statements: ``keyword args... [{ statements }]``.

The lexer cuts every ``{`` and ``}`` out as a line of its own, as keepalived does; a ``{``
opens the block of the statement just before it, so ``unicast_peer { 10.1.1.10 }`` is one
block. Blocks nest at most ``Limits.max_block_depth`` deep (keepalived's grammar needs five):
deeper braces are counted but build nothing, so a million nested braces cost a counter, not
a million objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hagate.config.findings import Impact, Reporter
from hagate.config.lexer import CLOSE, OPEN, Line, Token
from hagate.config.limits import DEFAULT_LIMITS, Limits


@dataclass(slots=True)
class Statement:
    """One keyword and its arguments, with the file and line it came from."""

    keyword: str
    args: list[Token]
    file: str
    line: int
    block: list[Statement] | None = None
    raw: str = ""  # the line's text after the lexer (for script and notify lines)

    @property
    def words(self) -> list[str]:
        return [t.text for t in self.args]


def parse_lines(
    lines: Iterable[Line], reporter: Reporter, limits: Limits = DEFAULT_LIMITS
) -> list[Statement]:
    """Build the statement tree; unbalanced or too deep braces are reported, never raised.

    A line is ``OPEN``, ``CLOSE`` or one statement's words (the lexer cuts braces out).
    """
    root: list[Statement] = []
    stack: list[tuple[Statement | None, list[Statement]]] = [(None, root)]
    body = root
    deep = 0  # braces open beyond the depth limit
    count = 0
    last: Line | None = None
    for line in lines:
        last = line
        first = line.tokens[0]
        if first is OPEN:
            if deep or len(stack) > limits.max_block_depth:
                if not deep:
                    reporter.error(
                        line.file,
                        line.number,
                        "{",
                        f"blocks nested over {limits.max_block_depth} deep; "
                        "the deeper ones are ignored",
                        Impact.CANNOT_RUN,
                    )
                deep += 1
                continue
            owner = body[-1] if body and body[-1].block is None else None
            if owner is None:
                reporter.error(line.file, line.number, "{", "'{' without a keyword before it")
                owner = Statement("{", [], line.file, line.number)
                body.append(owner)
            owner.block = body = []
            stack.append((owner, body))
        elif first is CLOSE:
            if deep:
                deep -= 1
            elif len(stack) == 1:
                reporter.error(line.file, line.number, "}", "'}' without a matching '{'")
            else:
                stack.pop()
                body = stack[-1][1]
        elif not deep:
            count += 1
            if count > limits.max_statements:
                reporter.error(
                    line.file,
                    line.number,
                    first.text,
                    f"more than {limits.max_statements} statements; the rest is not read",
                    Impact.CANNOT_RUN,
                )
                break
            body.append(Statement(first.text, list(line.tokens[1:]), line.file, line.number,
                                  None, line.raw))  # fmt: skip
    if deep and last is not None:
        reporter.error(last.file, last.number, "{", f"{deep} deep block(s) never closed")
    for owner, _ in stack[1:]:
        assert owner is not None
        reporter.error(
            owner.file,
            owner.line,
            owner.keyword,
            "block opened here is never closed (missing '}')",
        )
    return root
