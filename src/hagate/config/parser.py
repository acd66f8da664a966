"""Lines to a tree of statements: ``keyword args... [{ statements }]``.

A ``{`` ends the statement it follows and opens its block; anything after it on the same
line is the block's first statement, so ``unicast_peer { 10.1.1.10 }`` is one block. A
``{`` alone on a line opens the block of the statement above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hagate.config.findings import Reporter
from hagate.config.lexer import Line, Token


@dataclass(slots=True)
class Statement:
    keyword: str
    args: list[Token]
    file: str
    line: int
    block: list[Statement] | None = None

    @property
    def words(self) -> list[str]:
        return [t.text for t in self.args]


def parse_lines(lines: list[Line], reporter: Reporter) -> list[Statement]:
    """Build the statement tree; unbalanced braces are reported, never raised."""
    root: list[Statement] = []
    stack: list[tuple[Statement | None, list[Statement]]] = [(None, root)]
    for line in lines:
        current: Statement | None = None
        for token in line.tokens:
            body = stack[-1][1]
            if token.is_open():
                owner = current or (body[-1] if body and body[-1].block is None else None)
                if owner is None:
                    reporter.error(line.file, line.number, "{", "'{' without a keyword before it")
                    owner = Statement("{", [], line.file, line.number)
                    body.append(owner)
                owner.block = []
                stack.append((owner, owner.block))
                current = None
            elif token.is_close():
                if len(stack) == 1:
                    reporter.error(line.file, line.number, "}", "'}' without a matching '{'")
                else:
                    stack.pop()
                current = None
            elif current is None:
                current = Statement(token.text, [], line.file, line.number)
                body.append(current)
            else:
                current.args.append(token)
    for owner, _ in stack[1:]:
        assert owner is not None
        reporter.error(
            owner.file,
            owner.line,
            owner.keyword,
            "block opened here is never closed (missing '}')",
        )
    return root
