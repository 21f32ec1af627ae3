"""HTML to text in one linear pass.

What a reader of the *sent bytes* could see or recover, not what a browser
shows: text hidden with CSS (``display:none``, white on white) is kept, as
are ``<title>`` and ``<img alt>``; ``<script>``/``<style>`` contents and
comments are dropped. Entities are decoded, ``&nbsp;`` becomes a space.
Block elements end lines; tables become rows rendered by
:mod:`relay.extract.tables` (``<th>`` first rows are headers).

Linear time by construction: the tokenizer is one compiled pattern whose
every alternative either fails at once or always matches (an unterminated
comment, quote or tag runs to the end of the input), with possessive
quantifiers, so no input makes it backtrack or rescan. Text and the inline
tags inside it (``<span>``, ``<b>``, ``<a>``) are one token, so Python steps
only at structural tags (blocks, table parts, script/style, img).
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Callable

from relay.extract import tables


def _ci(word: str) -> str:
    """``script`` -> ``[Ss][Cc]...``: case-insensitive without re.I (which slows every class)."""
    return "".join(f"[{c.upper()}{c}]" for c in word)


_ATTRS = r"(?:[^>\"']++|\"[^\"]*+\"?|'[^']*+'?)*+(?:>|\Z)"   # the rest of a tag; always matches


# Inline elements common in mail (Outlook writes <o:p>); lower and upper case spelled out,
# which the regex engine matches much faster than a case-insensitive group.
_INLINE = ("a abbr b big cite code del em font i ins kbd label mark nobr o:p q s small span strike strong sub sup "
           "time u var wbr").split()


def _token_pattern() -> re.Pattern[str]:
    names = "|".join(sorted({*_INLINE, *(n.upper() for n in _INLINE)}, key=len, reverse=True))
    inline_tag = rf"<(?=/?(?:{names})(?![^\s/>])){_ATTRS}"
    return re.compile(
        # text together with the inline tags inside it: one match, no Python step per <span>;
        # the tags are then removed from it with one C-level sub. Other inline tags (mixed
        # case, rare names) come as "tag" tokens and are skipped the same way.
        rf"(?P<text>(?:[^<]++|{inline_tag})++)"
        rf"|(?P<tag></?(?P<name>[A-Za-z][^\s/>]*+){_ATTRS})"
        r"|(?P<comment><!--.*?(?:-->|\Z))"
        r"|(?P<decl><[!?/][^>]*+(?:>|\Z))"
        r"|(?P<lt><)",
        re.S,
    )


_INLINE_TAG = re.compile(rf"<{_ATTRS}")
# the rest of a <script>/<style> element after its start tag
_SKIP = {name: re.compile(rf".*?(?:</{_ci(name)}\s*+>|\Z)", re.S) for name in ("script", "style")}
_ALT = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_COLSPAN = re.compile(r"""\bcolspan\s*=\s*["']?(\d{1,3})""", re.I)
_PRE = re.compile(r"<(?:pre|textarea)\b", re.I)

_BREAK, _SKIP_BODY, _CELL, _ROW, _TABLE, _IMG = range(6)
_ACTIONS = {name: _BREAK for name in (
    "address article aside blockquote body br caption center dd details dialog dir div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html legend li main menu nav "
    "ol option p pre section summary textarea title ul").split()}
_ACTIONS.update(script=_SKIP_BODY, style=_SKIP_BODY, td=_CELL, th=_CELL, tr=_ROW, table=_TABLE, img=_IMG)
_TOKEN = _token_pattern()
# A nested table's text is copied into each enclosing table once: cap the depth
# so hostile nesting stays linear.
_MAX_NESTED_TABLES = 8


def html_to_text(markup: str, tick: Callable[[], None] | None = None) -> str:
    """Visible-or-hidden text of ``markup``; see the module docstring.

    ``tick`` (optional) is called every few thousand tokens; it may raise to
    stop a long document (extract() passes its deadline check).
    """
    keep_newlines = _PRE.search(markup) is not None
    if not keep_newlines:
        markup = markup.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    out: list[str] = []
    sink = out
    stack: list[tables.Builder] = []
    pre = 0
    depth_over = 0  # open <table>s past _MAX_NESTED_TABLES
    pos, end = 0, len(markup)
    match = _TOKEN.match
    steps = 0
    while pos < end:
        steps += 1
        if not steps & 0xFFF and tick is not None:
            tick()
        m = match(markup, pos)
        pos = m.end()
        kind = m.lastgroup
        if kind == "text":
            text = m.group()
            if "<" in text:
                text = _INLINE_TAG.sub("", text)
            if keep_newlines and not pre:
                text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
            sink.append(text)
            continue
        if kind != "tag":
            if kind == "lt":
                sink.append("<")
            continue  # comments and declarations are dropped
        name = m.group("name").lower()
        action = _ACTIONS.get(name)
        if action is None:
            continue  # an inline element: <b>Sm</b>ith -> Smith
        token = m.group()
        closing = token[1] == "/"
        if action == _BREAK:
            sink.append("\n")
            if name == "pre" or name == "textarea":
                pre = max(0, pre - 1) if closing else pre + 1
        elif action == _SKIP_BODY:
            if not closing:
                pos = _SKIP[name].match(markup, pos).end()
        elif action == _CELL:
            if stack:
                table = stack[-1]
                if closing:
                    table.end_cell()
                else:
                    span = _COLSPAN.search(token) if "olspan" in token else None
                    table.start_cell(name == "th", int(span.group(1)) if span else 1)
                    sink = table.cell
            else:
                sink.append(" ")
        elif action == _ROW:
            if stack:
                stack[-1].end_row()
                sink = stack[-1].cell
            else:
                sink.append("\n")
        elif action == _TABLE:
            if closing and depth_over:
                depth_over -= 1
                sink.append("\n")
            elif closing:
                if stack:
                    rendered = stack.pop().render()
                    sink = stack[-1].cell if stack else out
                    sink.append(f"\n{rendered}\n")
            elif len(stack) < _MAX_NESTED_TABLES:
                stack.append(tables.Builder())
                sink = stack[-1].cell
            else:
                depth_over += 1
                sink.append("\n")  # deeper tables flow as plain text (keeps the pass linear)
        elif action == _IMG and "alt" in token.lower():
            alt = _ALT.search(token)
            if alt:
                sink.append(f" {alt.group(1) or alt.group(2) or alt.group(3) or ''} ")
    while stack:
        rendered = stack.pop().render()
        (stack[-1].cell if stack else out).append(f"\n{rendered}\n")
    return normalise(_html.unescape("".join(out)))


_SPACES = re.compile(r"  ++")


def normalise(text: str) -> str:
    """Collapse spaces, strip line edges, keep at most one blank line in a row."""
    for odd in ("\xa0", "\t", "\r", "\f", "\v", "\u200b"):
        if odd in text:
            text = text.replace(odd, " ")
    text = _SPACES.sub(" ", text)
    text = text.replace(" \n", "\n").replace("\n ", "\n")
    while "\n\n\n" in text:   # each pass shortens every run by a third: logarithmic passes
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
