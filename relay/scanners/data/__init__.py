"""The content scanners' lexicons (the ``*.txt`` files here) and how to read them.

Each file starts with a comment saying where its terms come from and how they
were chosen. Format: ``#`` comments, ``[section]`` headers (a category, a
type or a confidence, as the scanner reading the file defines), one pattern a
line. In a pattern ``(a|b)`` is an alternation (an empty branch makes the
group optional) and a word ending in ``+`` takes simple English inflections.
Phrases come out lower case with whitespace collapsed and curly apostrophes
straightened, ready for :class:`relay.scanners.text.PhraseMatcher`.
"""

from __future__ import annotations

import re
from importlib import resources

_TYPOGRAPHIC = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})


def _normalise(phrase: str) -> str:
    return " ".join(phrase.translate(_TYPOGRAPHIC).lower().split())


_GROUP = re.compile(r"\(([^()]*)\)")


def expand(pattern: str) -> list[str]:
    """All phrases a lexicon pattern stands for.

    ``(a|b|)`` is an alternation (an empty branch makes it optional); a word
    ending in ``+`` takes simple English inflections (-s, -es, -ed, -ing, -er,
    -ers, with a final ``e`` dropped where English drops it). Spaces are
    normalised, so ``a (b|) c`` gives ``a b c`` and ``a c``.
    """
    out = [pattern]
    while any("(" in p for p in out):
        nxt = []
        for p in out:
            m = _GROUP.search(p)
            if not m:
                nxt.append(p)
                continue
            for branch in m.group(1).split("|"):
                nxt.append(p[:m.start()] + branch + p[m.end():])
        out = nxt
    phrases: list[str] = []
    for p in out:
        words = [_inflections(w) if w.endswith("+") else [w] for w in p.split()]
        combos = [""]
        for forms in words:
            combos = [f"{c} {f}".strip() for c in combos for f in forms]
        phrases.extend(combos)
    return [p for p in dict.fromkeys(phrases) if p]


def _inflections(word: str) -> list[str]:
    stem = word[:-1]
    forms = [stem, stem + "s", stem + "es", stem + "ed", stem + "ing", stem + "er", stem + "ers"]
    if stem.endswith("e"):
        forms += [stem + "d", stem[:-1] + "ing", stem + "r", stem + "rs"]
    if stem.endswith("y") and len(stem) > 2 and stem[-2] not in "aeiou":
        forms += [stem[:-1] + "ies", stem[:-1] + "ied"]
    if len(stem) >= 3 and stem[-1] in "bdgmnprt" and stem[-2] in "aeiou" and stem[-3] not in "aeiou":
        forms += [stem + stem[-1] + "ed", stem + stem[-1] + "ing", stem + stem[-1] + "er", stem + stem[-1] + "ers"]
    return list(dict.fromkeys(forms))


def load_lexicon(name: str) -> dict[str, list[str]]:
    """Read ``data/<name>``: ``[section]`` headers, one pattern a line, ``#`` comments.

    Returns section -> expanded, lower-cased phrases (lines before any header
    go in section ``""``).
    """
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return parse_lexicon(text)


def parse_lexicon(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().lower()
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).extend(_normalise(p) for p in expand(line))
    return sections
