"""Term lists and reference values, one item a line; ``#`` starts a comment.

Each file names its sources in its header comment.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_lines(name: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return tuple(out)


@cache
def load_words(name: str) -> frozenset[str]:
    """A file of whitespace-separated words (``#`` comments), as a set."""
    return frozenset(w for line in load_lines(name) for w in line.split())

