"""Lines to a tree of statements: ``keyword args... [{ statements }]``.

The lexer cuts every ``{`` and ``}`` out as a line of its own, as keepalived does; a ``{``
opens the block of the statement just before it, so ``unicast_peer { 10.1.1.10 }`` is one
block. Blocks nest at most ``Limits.max_block_depth`` deep (keepalived's grammar needs five):
deeper braces are counted but build nothing, so a million nested braces cost a counter, not
a million objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from hagate.config.findings import Impact, Reporter
from hagate.config.lexer import Line, Token
from hagate.config.limits import DEFAULT_LIMITS, Limits


@dataclass(slots=True)
class Statement:
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
    lines: list[Line], reporter: Reporter, limits: Limits = DEFAULT_LIMITS
) -> list[Statement]:
    """Build the statement tree; unbalanced or too deep braces are reported, never raised."""
    root: list[Statement] = []
    stack: list[tuple[Statement | None, list[Statement]]] = [(None, root)]
    deep = 0  # braces open beyond the depth limit
    for line in lines:
        current: Statement | None = None
        for token in line.tokens:
            body = stack[-1][1]
            if token.is_open():
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
                    current = None
                    continue
                owner = current or (body[-1] if body and body[-1].block is None else None)
                if owner is None:
                    reporter.error(line.file, line.number, "{", "'{' without a keyword before it")
                    owner = Statement("{", [], line.file, line.number)
                    body.append(owner)
                owner.block = []
                stack.append((owner, owner.block))
                current = None
            elif token.is_close():
                if deep:
                    deep -= 1
                elif len(stack) == 1:
                    reporter.error(line.file, line.number, "}", "'}' without a matching '{'")
                else:
                    stack.pop()
                current = None
            elif deep:
                continue
            elif current is None:
                current = Statement(token.text, [], line.file, line.number, raw=line.raw)
                body.append(current)
            else:
                current.args.append(token)
    if deep:
        last = lines[-1]
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
