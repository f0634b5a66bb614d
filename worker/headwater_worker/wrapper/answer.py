"""The module in a model's answer, however it was written: fenced or plain, in several blocks, among prose.

Models put the code in a fenced block most of the time, but not always the way they were asked: prose
before and after it, a block per function, a first draft and then a corrected one, a block left open at the
end of a long answer, or no fence at all. The rule: the last block that defines `collect` wins (a model that
writes two corrects itself), with the fragments written in blocks just before it (its imports, a helper);
failing that, the Python blocks joined in order when they define it together; failing that, the longest
stretch of the text that parses as Python and defines `collect`.
"""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[\w+.-]*)[^\n]*\n", re.MULTILINE)
_PYTHON_INFO = frozenset({"", "python", "py", "python3", "py3"})
_CODE_START = re.compile(r"^(?:from |import |def |class |@|\"\"\"|'''|#|[A-Z_][A-Z0-9_]* *=)", re.MULTILINE)
# Bounds on the search for unfenced code, so that a long answer of prose costs little.
_PLAIN_STARTS = 10
_PLAIN_TRAILING_LINES = 40


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of `text` as (info string, content), in order; an unclosed last block runs to the
    end of the text."""
    blocks: list[tuple[str, str]] = []
    position = 0
    while (opening := _FENCE.search(text, position)) is not None:
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = closing.search(text, opening.end())
        content = text[opening.end() : end.start() if end else len(text)]
        blocks.append((opening["info"].lower(), content))
        position = end.end() if end else len(text)
    return blocks


def defines_collect(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == "collect" for node in tree.body)


def _plain_code(text: str) -> str | None:
    """The longest stretch of unfenced text that parses and defines `collect`: from a line that starts
    like code to the end, prose lines dropped from the end until it parses."""
    starts = [match.start() for match in _CODE_START.finditer(text)]
    for start in starts[:_PLAIN_STARTS]:
        lines = text[start:].rstrip().splitlines()
        for _ in range(min(len(lines), _PLAIN_TRAILING_LINES)):
            candidate = "\n".join(lines)
            if defines_collect(candidate):
                return candidate
            lines.pop()
    return None


def _with_fragments(blocks: list[str], last: int) -> str:
    """Block `last`, with the blocks before it that define no `collect` of their own (imports, helper
    functions written apart) joined in front, back to the one before that does, when all of it parses."""
    first = last
    while first > 0 and not defines_collect(blocks[first - 1]):
        first -= 1
    joined = "\n\n".join(content.strip("\n") for content in blocks[first : last + 1])
    return joined if defines_collect(joined) else blocks[last].strip("\n")


def extract_code(text: str) -> str | None:
    """The module in an answer, or None when there is none."""
    blocks = [content for info, content in fenced_blocks(text) if info in _PYTHON_INFO]
    for index in reversed(range(len(blocks))):
        if defines_collect(blocks[index]):
            return _with_fragments(blocks, index) + "\n"
    joined = "\n\n".join(content.strip("\n") for content in blocks)
    if blocks and defines_collect(joined):
        return joined + "\n"
    plain = _plain_code(text)
    if plain is not None:
        return plain.strip("\n") + "\n"
    if blocks:
        # A block that does not parse is still the model's module: validation names what is wrong with it,
        # and the next attempt gets that.
        return max(blocks, key=len).strip("\n") + "\n"
    return None
