"""
Model YAML as highlighted, numbered HTML lines, with problem lines marked.

A small line-oriented highlighter is enough for model files (keys, comments,
strings, numbers, booleans, ``${placeholders}``); it keeps the UI free of a
highlighting dependency and runs in microseconds per line.

>>> [line.html for line in highlight("bins: 12  # hours")]
['<span class="y-key">bins</span>: <span class="y-num">12</span>  <span class="y-com"># hours</span>']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

_KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w.-]*|\"[^\"]*\"|'[^']*')(\s*:)(?=\s|$)")
_TOKEN = re.compile(
    r"(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*')"
    r"|(?P<num>(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))"
    r"|(?P<bool>(?<![\w])(?:true|false|null|True|False|Null|~)(?![\w]))"
    r"|(?P<ph>\$\{[^}]*\})"
)
MAX_LINES = 20_000


@dataclass(frozen=True)
class Line:
    number: int
    html: str
    problems: tuple[str, ...] = ()


def _comment_start(text: str) -> int:
    quote: str | None = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'" and (i == 0 or text[i - 1] in " \t:[{,-"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return i
    return -1


def _values(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(escape(text[pos:m.start()]))
        kind = m.lastgroup or ""
        css = {"str": "y-str", "num": "y-num", "bool": "y-bool", "ph": "y-ph"}[kind]
        out.append(f'<span class="{css}">{escape(m.group())}</span>')
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def highlight_line(text: str) -> str:
    cut = _comment_start(text)
    code, comment = (text, "") if cut < 0 else (text[:cut], text[cut:])
    html = ""
    m = _KEY.match(code)
    if m:
        html = (escape(m.group(1)) + f'<span class="y-key">{escape(m.group(2))}</span>'
                + escape(m.group(3)))
        code = code[m.end():]
    html += _values(code)
    if comment:
        html += f'<span class="y-com">{escape(comment)}</span>'
    return html


def highlight(text: str, problems: Iterable[tuple[int | None, str]] = ()) -> list[Line]:
    """Numbered lines; ``problems`` are ``(line, message)`` pairs to attach."""
    by_line: dict[int, list[str]] = {}
    for line, message in problems:
        if line is not None:
            by_line.setdefault(line, []).append(message)
    lines = text.splitlines()[:MAX_LINES]
    return [Line(i, highlight_line(t), tuple(by_line.get(i, ()))) for i, t in enumerate(lines, 1)]
