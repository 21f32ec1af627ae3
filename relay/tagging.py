"""The act stage's header edit on the output copy: strip forged verdicts, add ours.

The received bytes are never changed in place: :func:`tag` returns a new
message in which

1. every header field carrying a name the relay owns (``settings.action_header``,
   ``settings.rules_header`` and the extra headers this verdict adds; any
   casing, folded or not) is removed, so a sender cannot forge a verdict;
2. ``X-Policy-Action: accept|tag`` and ``X-Policy-Rules: <ids>`` (names from
   settings), then the extra headers the verdict's :class:`TagSpec` asks for,
   are added at the top of the header section;
3. the TagSpec's subject prefix is put in front of the Subject once (not again
   if the decoded subject already carries it anywhere, as replies do), leaving
   encoded words and folding as they were.

Every other byte, the body included, stays exactly as received, and new lines
use the message's own line ending. Values we write are sanitised whatever the
rules contain: control characters (CR, LF, NUL, ESC...) become spaces, the
length is bounded, non-ASCII text becomes RFC 2047 encoded words, and lines
are folded to 78 characters where there is whitespace (never past 998).

:func:`header_edits` gives the same edits as milter operations (delete,
insert, change), for the milter front, which cannot rewrite the bytes.

Header lines are split the way Python's e-mail parser splits them (CRLF, LF or
a bare CR ends a line), so a field hidden behind a bare CR is seen here too.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import re
from dataclasses import dataclass

from relay.config import Settings
from relay.verdict import Action, Verdict

MAX_VALUE_CHARS = 900          # longest value we write, before encoding
SOFT_LIMIT = 78                # RFC 5322 2.1.1: SHOULD
HARD_LIMIT = 998               # RFC 5322 2.1.1: MUST

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_VALID_NAME = re.compile(r"[!-9;-~]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_RULE_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+@=-]")

# Fields a tag rule may not add: they describe the message itself, and a second
# copy would change what the recipient sees or how the message is read.
_PROTECTED = frozenset({
    "from", "sender", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition", "content-id", "dkim-signature", "arc-seal", "arc-message-signature",
    "arc-authentication-results", "authentication-results", "received", "return-path",
})


@dataclass(frozen=True, slots=True)
class Field:
    """One header field as received: its lines (terminators included) and its name."""

    name: str          # as written, '' for a line that is not a field (no colon)
    raw: bytes         # every line of the field, folding and line endings kept

    @property
    def key(self) -> str:
        return self.name.lower()

    def value(self) -> str:
        """The unfolded value, bytes read as UTF-8 (errors replaced)."""
        _, _, value = self.raw.partition(b":")
        text = value.decode("utf-8", "replace")
        return re.sub(r"\r\n|\n|\r", "", text).strip()


@dataclass(frozen=True, slots=True)
class Head:
    """A message split into header fields and the rest (blank line and body)."""

    fields: tuple[Field, ...]
    rest: bytes        # the empty line ending the header section, and the body
    eol: bytes         # the line ending the message uses

    def named(self, name: str) -> list[Field]:
        key = name.lower()
        return [f for f in self.fields if f.key == key]

    def join(self, fields: list[Field] | tuple[Field, ...] | None = None) -> bytes:
        chosen = self.fields if fields is None else fields
        return b"".join(f.raw for f in chosen) + self.rest


def split_head(raw: bytes) -> Head:
    """Split ``raw`` into its header fields (bytes kept exactly) and the rest."""
    first = raw.find(b"\n")
    eol = b"\n" if first > 0 and raw[first - 1:first] != b"\r" else b"\r\n"
    fields: list[Field] = []
    folded: list[bytes] = []                        # the last field's lines, joined once (no quadratic +=)
    pos = 0
    for m in _LINE.finditer(raw):
        line = m.group()
        if line in (b"\r\n", b"\n", b"\r"):
            break                                   # the empty line: the body follows
        if line[:1] in (b" ", b"\t") and fields:
            folded.append(line)
        else:
            if len(folded) > 1:
                fields[-1] = Field(fields[-1].name, b"".join(folded))
            nm = _FIELD_NAME.match(line)
            fields.append(Field(nm.group(1).decode("ascii") if nm else "", line))
            folded = [line]
        pos = m.end()
    if len(folded) > 1:
        fields[-1] = Field(fields[-1].name, b"".join(folded))
    return Head(tuple(fields), raw[pos:], eol)


def _extra_headers(verdict: Verdict | None, settings: Settings) -> list[tuple[str, str]]:
    """The verdict's extra headers we will write: valid names, none of ours or protected."""
    own = _relay_names(settings)
    out = []
    for name, value in verdict.tag.headers if verdict is not None else ():
        name = name.strip()
        if _VALID_NAME.fullmatch(name) and name.lower() not in own | _PROTECTED:
            out.append((name, value))
    return out


def _relay_names(settings: Settings) -> frozenset[str]:
    return frozenset({settings.action_header.lower(), settings.rules_header.lower()})


def owned_names(settings: Settings, verdict: Verdict | None = None) -> frozenset[str]:
    """Header names only the relay may write on this message: its action and rules
    headers, and the extra headers the verdict adds (ours replace the client's)."""
    return _relay_names(settings) | {name.lower() for name, _ in _extra_headers(verdict, settings)}


def strip_forged(raw: bytes, settings: Settings, verdict: Verdict | None = None) -> bytes:
    """``raw`` without any header field carrying a name the relay owns (:func:`owned_names`)."""
    head = split_head(raw)
    own = owned_names(settings, verdict)
    return head.join([f for f in head.fields if f.key not in own])


def forged_header_indexes(raw: bytes, settings: Settings, verdict: Verdict | None = None) -> list[tuple[str, int]]:
    """(name, index) of each forged field, for a milter's ``chgheader(name, index, '')``.

    The index is 1-based among the fields of that name (case-insensitive), as
    ``smfi_chgheader`` counts. The list is ordered highest index first per
    name, so deleting in this order never shifts an index still to come.
    """
    head = split_head(raw)
    own = owned_names(settings, verdict)
    seen: dict[str, int] = {}
    out: list[tuple[str, int]] = []
    for f in head.fields:
        if f.key in own:
            seen[f.key] = seen.get(f.key, 0) + 1
            out.append((f.name, seen[f.key]))
    return sorted(out, key=lambda item: (item[0].lower(), -item[1]))


# --------------------------------------------------------------------------- values


def clean_text(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """One line of text: control characters and line breaks become spaces, runs of
    whitespace collapse, length bounded (an ellipsis marks a cut)."""
    out = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return out if len(out) <= limit else out[: limit - 3].rstrip() + "..."


def _fold_ascii(name: str, value: str, eol: bytes) -> bytes:
    """``name: value`` folded at spaces to 78 columns. Values are bounded by
    MAX_VALUE_CHARS and names by 64, so no line can pass 998."""
    lines: list[str] = []
    current = name + ":"
    for word in value.split(" ") if value else []:
        if len(current) + 1 + len(word) > SOFT_LIMIT and current != name + ":":
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    return eol.join(line.encode("ascii") for line in lines) + eol


def render_field(name: str, value: str, eol: bytes = b"\r\n", limit: int = MAX_VALUE_CHARS) -> bytes:
    """A complete header field, sanitised, encoded (RFC 2047) if not ASCII, and folded."""
    text = clean_text(value, limit)
    if text.isascii():
        return _fold_ascii(name, text, eol)
    encoded = email.header.Header(text, "utf-8", header_name=name, maxlinelen=SOFT_LIMIT)
    return f"{name}: {encoded.encode(linesep=eol.decode('ascii'))}".encode("ascii") + eol


def _rule_ids(verdict: Verdict) -> str:
    ids: list[str] = []
    for match in verdict.enforced:
        rid = _RULE_ID_UNSAFE.sub("_", clean_text(match.rule_id, 64))
        if rid and rid not in ids:
            ids.append(rid)
    text = ", ".join(ids)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 5].rsplit(",", 1)[0] + ", ..."
    return text


def action_word(action: Action) -> str:
    """What the action header says: ``accept`` for accepted mail, ``tag`` for
    everything else that is forwarded (tagged mail, mail a reviewer released)."""
    return "accept" if action is Action.ACCEPT else "tag"


# --------------------------------------------------------------------------- subject


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def _prefixed_subject(fld: Field, prefix: str, eol: bytes) -> Field:
    """``fld`` with ``prefix`` put in front of its value, unless already in it."""
    if prefix.lower() in _SPACES.sub(" ", _decoded(fld.value())).lower():
        return fld
    if prefix.isascii():
        word = prefix.encode("ascii")
    else:   # the trailing space goes inside: whitespace between encoded words is dropped
        encoded = email.header.Header(prefix + " ", "utf-8", header_name=fld.name)
        word = encoded.encode(linesep=eol.decode("ascii")).encode("ascii")
    colon = fld.raw.index(b":") + 1
    start = colon + len(fld.raw[colon:]) - len(fld.raw[colon:].lstrip(b" \t"))
    first = _LINE.match(fld.raw, start)
    first_line = first.group().rstrip(b"\r\n") if first else b""
    if not first_line.strip():          # value empty on the first line: nothing to separate
        return Field(fld.name, fld.raw[:colon] + b" " + word + fld.raw[start:])
    fits = colon + 1 + len(word) + 1 + len(first_line) <= SOFT_LIMIT
    return Field(fld.name, fld.raw[:colon] + b" " + word + (b" " if fits else eol + b" ") + fld.raw[start:])


# --------------------------------------------------------------------------- tag


@dataclass(frozen=True, slots=True)
class _Plan:
    head: Head
    kept: list[Field]                     # the received fields minus forged ones, subjects prefixed
    added: list[bytes]                    # complete fields to put on top, in order
    changed: list[tuple[int, Field]]      # (1-based Subject index, new field)


def _plan(raw: bytes, verdict: Verdict, settings: Settings) -> _Plan:
    head = split_head(raw)
    own = owned_names(settings, verdict)
    eol = head.eol
    kept = [f for f in head.fields if f.key not in own]
    if kept and kept[0].raw[:1] in (b" ", b"\t"):
        # A continuation line with no field before it would fold into the last
        # field we add on top (a sender could append to our verdict): drop it.
        kept = kept[1:]
    added = [
        render_field(settings.action_header, action_word(verdict.action), eol),
        render_field(settings.rules_header, _rule_ids(verdict), eol),
    ]
    added += [render_field(name, value, eol) for name, value in _extra_headers(verdict, settings)]
    changed: list[tuple[int, Field]] = []
    prefix = clean_text(verdict.tag.subject_prefix, 200)
    if prefix:
        subjects = [i for i, f in enumerate(kept) if f.key == "subject"]
        for n, i in enumerate(subjects, 1):
            new = _prefixed_subject(kept[i], prefix, eol)
            if new is not kept[i]:
                kept[i] = new
                changed.append((n, new))
        if not subjects:
            added.append(render_field("Subject", prefix, eol))
    return _Plan(head, kept, added, changed)


def tag(raw: bytes, verdict: Verdict, settings: Settings) -> bytes:
    """The output copy of ``raw``: forged relay headers removed, ours added on top,
    the verdict's extra headers and subject prefix applied. See the module doc."""
    plan = _plan(raw, verdict, settings)
    return b"".join(plan.added) + b"".join(f.raw for f in plan.kept) + plan.head.rest


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """What :func:`tag` does, as milter operations. Values are folded with LF + space."""

    delete: tuple[tuple[str, int], ...]          # chgheader(name, index, "") in this order
    insert: tuple[tuple[str, str], ...]          # insheader(0, 1, 2..., name, value): top-down order
    change: tuple[tuple[str, int, str], ...]     # chgheader(name, index, value): the prefixed Subjects


def _name_value(raw: bytes) -> tuple[str, str]:
    name, _, value = raw.decode("utf-8", "replace").partition(":")
    return name, re.sub(r"\r\n|\r|\n", "\n", value.strip(" \t\r\n"))


def header_edits(raw: bytes, verdict: Verdict, settings: Settings) -> HeaderEdits:
    """The milter front's form of :func:`tag`: the same edits, as header operations."""
    plan = _plan(raw, verdict, settings)
    return HeaderEdits(
        delete=tuple(forged_header_indexes(raw, settings, verdict)),
        insert=tuple(_name_value(f) for f in plan.added),
        change=tuple((fld.name, n, _name_value(fld.raw)[1]) for n, fld in plan.changed),
    )


def header_domain(raw: bytes, name: str = "From") -> str:
    """The domain of the first address in the first ``name`` field, lower-case, or ''."""
    fields = split_head(raw).named(name)
    if not fields:
        return ""
    for _, addr in email.utils.getaddresses([fields[0].value()]):
        if "@" in addr:
            return addr.rpartition("@")[2].strip().strip(".").lower()
    return ""
