"""Text helpers shared by the content scanners (language, contracts, figures, confidentiality).

Three jobs, all linear in the length of the text:

* **Own words.** :func:`own_text` keeps what the sender wrote and drops what
  they quote: ``> ...`` lines, the original under an attribution line
  (``On Tue, 3 Mar 2026, Bob wrote:``, ``-----Original Message-----``, an
  Outlook ``From: / Sent:`` block, a ``Forwarded message`` banner), the
  signature under ``-- `` and standard legal disclaimers (paragraphs with the
  cues listed in ``data/disclaimers.txt``).
* **Lexicons.** :func:`relay.scanners.data.load_lexicon` reads a documented
  word list from ``data/`` (sections, alternation groups, simple inflections)
  and :class:`PhraseMatcher` finds its phrases with one Hyperscan database,
  built once, on whole words only (``assessment`` never matches ``ass``).
* **Redaction.** :func:`mask` turns a matched term into ``b*****``.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import hyperscan

from relay.extract import TextChunk
from relay.scanners.data import load_lexicon
from relay.findings import Finding
from relay.scanners import ScanContext

# ---------------------------------------------------------------- normalising

# Typographic quotes and hyphens become their ASCII twins (str.replace per character is far
# faster than str.translate on non-ASCII text).
_TYPOGRAPHIC = (("\u2019", "'"), ("\u2018", "'"), ("\u02bc", "'"), ("\u201c", '"'), ("\u201d", '"'),
                ("\u2010", "-"), ("\u2011", "-"))


def flatten(text: str) -> str:
    """Whitespace runs become one space, curly quotes straight ones (case kept)."""
    if not text.isascii():
        for char, ascii_char in _TYPOGRAPHIC:
            if char in text:
                text = text.replace(char, ascii_char)
    return " ".join(text.split())  # str.split() also splits on no-break spaces


def fold(flat: str) -> str:
    """Lower case with the same length as ``flat``, so offsets line up with it."""
    low = flat.lower()
    if len(low) == len(flat):
        return low
    return "".join(ch.lower()[:1] for ch in flat)  # e.g. "İ" lowers to two code points


# ---------------------------------------------------------------- own words

_ATTRIBUTION = re.compile(
    r"^\s*(?:on\b.{0,200}\bwrote:\s*$"                 # On Tue, 3 Mar 2026 at 10:00, Bob <b@x> wrote:
    r"|.{0,200}\b(?:wrote|writes|a écrit|schrieb)\s*:\s*$"  # Bob Smith wrote:
    r"|am\b.{0,200}\bschrieb\b.{0,200}:\s*$"       # Am 03.03.2026 um 10:00 schrieb Bob <b@x>:
    r"|-{2,}\s*original message\s*-{2,}"               # -----Original Message-----
    r"|_{10,}\s*$"                                     # Outlook on the web: a rule, then From:/Sent:
    r"|(?:from|von|de)\s*:.{0,300}$)",                 # From: Bob (checked with the next lines below)
    re.I,
)
_FORWARD = re.compile(r"^\s*-{2,}\s*(?:forwarded message|begin forwarded message)\s*-{0,}\s*:?\s*$"
                      r"|^\s*begin forwarded message\s*:\s*$", re.I)
_HEADER_LINE = re.compile(r"^\s*(?:sent|date|to|subject|cc|gesendet|envoyé)\s*:", re.I)
_SIG = re.compile(r"^-- ?$")
# Text from HTML loses its line breaks: "Thanks On Tue, 3 Mar 2026, Bob <b@x> wrote: quoted..."
_INLINE_ATTRIBUTION = re.compile(r"\bOn\b[^\n]{5,200}?\bwrote:|-{3,}\s*Original Message\s*-{3,}", re.I)


def _is_attribution(lines: list[str], i: int) -> bool:
    line = lines[i]
    if ":" not in line and not line.lstrip().startswith(("-", "_")):
        return False  # every attribution form has a colon, or is a rule of dashes or underscores
    if not _ATTRIBUTION.match(line):
        return False
    stripped = line.strip().lower()
    following = [x for x in lines[i + 1:i + 6] if x.strip()]
    if stripped.startswith(("from:", "von:", "de:")):
        # An Outlook header block: "From:" then Sent:/Date:/To:/Subject: lines.
        return sum(bool(_HEADER_LINE.match(x)) for x in following) >= 2
    if set(stripped) == {"_"}:
        return bool(following) and following[0].strip().lower().startswith(("from:", "von:", "de:"))
    return True


_MAX_SIGNATURE_LINES = 20


def _short_tail(lines: list[str], start: int) -> bool:
    """At most ``_MAX_SIGNATURE_LINES`` non-empty lines from ``start`` on (counting stops early)."""
    count = 0
    for line in itertools.islice(lines, start, None):
        if line.strip():
            count += 1
            if count > _MAX_SIGNATURE_LINES:
                return False
    return True


def own_text(text: str, *, keep_forwarded: bool = False, keep_disclaimers: bool = False) -> str:
    """The sender's own words in ``text``: quoted replies, signature and disclaimers removed.

    A ``>`` line is dropped on its own. At an attribution line the rest is a
    quotation, unless the next non-empty line is ``>``-quoted (a bottom-posted
    or interleaved reply: only the attribution line goes, the ``>`` lines go
    one by one). The signature under ``-- `` goes when it is short (20 lines at
    most; a long text under a ``-- `` line is still read, so the delimiter
    cannot hide a message). A forwarded message is dropped too unless ``keep_forwarded``
    (forwarding confidential content is the sender's act; forwarding someone's
    rude words is not the sender's language).
    """
    if ">" not in text and "\n" not in text:
        return text if keep_disclaimers else strip_disclaimers(text)
    lines = text.splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line.lstrip(" \t").startswith(">"):
            continue
        if _SIG.match(line) and _short_tail(lines, i + 1):
            break   # a signature; a "-- " line with a long text under it is no signature
        if "orward" in line and _FORWARD.match(line):
            if keep_forwarded:
                continue
            break
        if _is_attribution(lines, i):
            following = next((x for x in lines[i + 1:i + 6] if x.strip()), "")   # bounded look-ahead
            if following.lstrip(" \t").startswith(">"):
                continue
            break
        inline = _INLINE_ATTRIBUTION.search(line) if ("rote:" in line or "riginal" in line) else None
        if inline:
            kept.append(line[:inline.start()])
            break
        kept.append(line)
    out = "\n".join(kept)
    return out if keep_disclaimers else strip_disclaimers(out)


# ---------------------------------------------------------------- disclaimers

_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_DISCLAIMER_WINDOW = 8192


def strip_disclaimers(text: str) -> str:
    """Drop paragraphs that read as a standard e-mail disclaimer.

    A paragraph is a disclaimer when it holds one strong cue ("intended solely
    for the use of") or two different weak ones ("confidential" + "notify the
    sender"). Cues are in ``data/disclaimers.txt``. Only the last
    ``_DISCLAIMER_WINDOW`` characters are examined: a sender's disclaimer ends
    their own words (quoted originals, with theirs, are already gone).
    """
    if len(text) > _DISCLAIMER_WINDOW:
        sep = _PARAGRAPHS.search(text, len(text) - _DISCLAIMER_WINDOW)
        if sep is not None:
            return text[:sep.end()] + strip_disclaimers(text[sep.end():])
    paras = _PARAGRAPHS.split(text)
    # One automaton pass over all paragraphs, each flattened, joined by "\n" (which flatten removes).
    flats = [fold(flatten(p)) for p in paras]
    joined = "\n".join(flats)
    first: dict[int, int] = {}            # paragraph -> offset (in its flat form) of its first weak cue
    strong: dict[int, int] = {}           # paragraph -> offset of its first strong cue
    weak: dict[int, set[str]] = {}
    para, para_start, boundary = 0, 0, joined.find("\n")
    for m in _DISCLAIMER_CUES.find(joined):
        while boundary != -1 and m.start > boundary:
            para, para_start, boundary = para + 1, boundary + 1, joined.find("\n", boundary + 1)
        if m.label == "strong":
            strong.setdefault(para, m.start - para_start)
        else:
            first.setdefault(para, m.start - para_start)
            weak.setdefault(para, set()).add(m.phrase)
    drop = {i: at for i, at in first.items() if len(weak[i]) >= 2} | strong
    if not drop:
        return text
    out = []
    for i, p in enumerate(paras):
        if i not in drop:
            out.append(p)
        elif (kept := _lines_before(p, flats[i].count(" ", 0, drop[i]))):
            out.append(kept)   # the sender's lines above a disclaimer with no blank line between
    return "\n\n".join(out)


def _lines_before(para: str, words: int) -> str:
    """The whole lines of ``para`` that come before its ``words``-th word (0-based)."""
    lines = para.split("\n")
    seen = 0
    for n, line in enumerate(lines):
        seen += len(line.split())
        if seen > words:
            return "\n".join(lines[:n])
    return para


# ---------------------------------------------------------------- lexicons

@dataclass(frozen=True, slots=True)
class Match:
    start: int
    end: int             # exclusive
    phrase: str          # the lexicon phrase, lower case
    label: str           # the section it came from


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class PhraseMatcher:
    """Whole-word, case-insensitive matching of many phrases in one pass.

    Hyperscan (the multi-literal engine the personal-data anchors use) finds
    every occurrence of every phrase in the UTF-8 bytes of the text at
    hundreds of MB/s; only those occurrences reach Python, which keeps the
    whole-word ones and the longest of overlapping ones. (pyahocorasick's
    iteration walked every character in Python-visible steps: ~1 ms per 20 KB
    per lexicon, bench/profile.md.)
    """

    def __init__(self, labelled: Mapping[str, Iterable[str]]) -> None:
        entries: dict[str, str] = {}
        for label, phrases in labelled.items():
            for phrase in phrases:
                if phrase and phrase not in entries:
                    entries[phrase] = label
        self._entries = tuple(entries.items())
        self.size = len(self._entries)
        self._db = None
        self._local = threading.local()
        if self.size:
            self._db = literal_database([phrase for phrase, _ in self._entries])

    def find(self, low: str) -> list[Match]:
        """Non-overlapping whole-word matches in ``low`` (a :func:`fold`-ed text); longest wins."""
        if not self.size or not low:
            return []
        found: list[Match] = []
        n = len(low)
        for end, idx in literal_ends(self._db, self._local, low):
            phrase, label = self._entries[idx]
            start = end - len(phrase)
            if start > 0 and _word_char(low[start - 1]) and _word_char(phrase[0]):
                continue
            if end < n and _word_char(low[end]) and _word_char(phrase[-1]):
                continue
            found.append(Match(start, end, phrase, label))
        return list(_non_overlapping(found))


def literal_database(literals: Sequence[str]) -> hyperscan.Database:
    """A Hyperscan database matching each of ``literals`` exactly (pattern id = its index)."""
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    exprs = [_literal(text) for text in literals]
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=[0] * len(exprs))
    return db


def literal_ends(db: hyperscan.Database, local: threading.local, text: str) -> list[tuple[int, int]]:
    """``(end, pattern id)`` of every match of ``db``'s patterns in ``text``, in text order,
    ``end`` as a str offset. The patterns must match whole UTF-8 characters (literals; ASCII
    words, caseless or not). ``local`` keeps one Hyperscan scratch per thread."""
    scratch = getattr(local, "scratch", None)
    if scratch is None:
        scratch = local.scratch = hyperscan.Scratch(db)
    data = text.encode("utf-8", "surrogatepass")
    hits: list[tuple[int, int]] = []

    def on_match(idx: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
        hits.append((to, idx))

    db.scan(data, match_event_handler=on_match, scratch=scratch)
    hits.sort()
    if len(data) == len(text):
        return hits
    out, chars, done = [], 0, 0              # byte -> str offsets, decoded once, in order
    for to, idx in hits:                     # a whole UTF-8 literal ends on a character boundary
        chars += len(data[done:to].decode("utf-8", "surrogatepass"))
        done = to
        out.append((chars, idx))
    return out


def _literal(phrase: str) -> bytes:
    """``phrase`` as a Hyperscan pattern matching exactly its UTF-8 bytes."""
    return b"".join(b"\\x%02x" % b for b in phrase.encode("utf-8", "surrogatepass"))


def _non_overlapping(matches: list[Match]) -> Iterator[Match]:
    matches.sort(key=lambda m: (m.start, m.start - m.end))
    last_end = -1
    for m in matches:
        if m.start >= last_end:
            yield m
            last_end = m.end


# ---------------------------------------------------------------- redaction

def mask(term: str) -> str:
    """``bastard`` -> ``b******``; each word of a phrase keeps only its first letter."""
    return " ".join(w[:1] + "*" * (len(w) - 1) for w in term.split())


_DISCLAIMER_CUES = PhraseMatcher(load_lexicon("disclaimers.txt"))


# ---------------------------------------------------------------- message helpers

@dataclass(frozen=True, slots=True)
class OwnChunk:
    where: str
    source: str
    protected: bool
    flat: str            # the sender's own words, whitespace collapsed, case kept
    low: str             # fold(flat): same length, lower case


_REPLY_SUBJECT = re.compile(r"\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|tr|rif)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def own_chunks(ctx: ScanContext, sources: tuple[str, ...] = ("body", "header", "attachment"),
               *, keep_forwarded: bool = False) -> Iterator[OwnChunk]:
    """The extracted chunks of ``sources``, reduced to the sender's own words (see :func:`own_text`).

    Quote stripping applies to the body only: an attached document has no
    reply quoting. Unless ``keep_forwarded``, a subject starting "Re:" or
    "Fwd:" (someone else's subject) and the text of a message attached as
    message/rfc822 (someone else's message) are skipped. The result per chunk
    is memoised (a small bounded cache keyed by the chunk object), so the
    content scanners reading one message prepare its text once.
    """
    attached = () if keep_forwarded else _attached_messages(ctx)
    for chunk in ctx.extraction.chunks:
        if chunk.source == "header" and not keep_forwarded and _REPLY_SUBJECT.match(chunk.text):
            continue
        if attached and chunk.where.startswith(attached):
            continue   # inside a message forwarded as an attachment: someone else's words
        if chunk.source in sources and chunk.text:
            own = _own_chunk(chunk, keep_forwarded)
            if own is not None:
                yield own


def _attached_messages(ctx: ScanContext) -> tuple[str, ...]:
    """Label prefixes ("part 1.2.") of the parts inside attached messages (message/rfc822)."""
    return tuple(f"{p.container} > part {p.index}." if p.container else f"part {p.index}."
                 for p in ctx.message.walk() if p.content_type == "message/rfc822")


def _prepare(chunk: TextChunk, keep_forwarded: bool) -> OwnChunk | None:
    text = own_text(chunk.text, keep_forwarded=keep_forwarded) if chunk.source == "body" else chunk.text
    flat = flatten(text)
    return OwnChunk(chunk.where, chunk.source, chunk.protected, flat, fold(flat)) if flat else None


_CACHE: OrderedDict[tuple[int, bool], tuple[TextChunk, OwnChunk | None]] = OrderedDict()
_PENDING: dict[tuple[int, bool], tuple[TextChunk, threading.Event]] = {}
_CACHE_LOCK = threading.Lock()
_WAIT_SECONDS = 60.0
_CACHE_MAX_ENTRIES = 16
_CACHE_MAX_CHARS = 4 * 1024 * 1024


def _own_chunk(chunk: TextChunk, keep_forwarded: bool) -> OwnChunk | None:
    """The memoised :func:`_prepare`. The global lock guards the dict only; a chunk being
    prepared by one scanner is awaited by the others (same message), never by other messages."""
    if keep_forwarded and "orward" not in chunk.text:
        keep_forwarded = False   # no forwarded message: both views are the same, share one
    key = (id(chunk), keep_forwarded)   # the cache holds the chunk, so its id is not reused meanwhile
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is chunk:
            _CACHE.move_to_end(key)
            return hit[1]
        pending = _PENDING.get(key)
        if pending is None:
            _PENDING[key] = (chunk, threading.Event())
    if pending is not None and pending[0] is chunk:
        pending[1].wait(_WAIT_SECONDS)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
        return hit[1] if hit is not None and hit[0] is chunk else _prepare(chunk, keep_forwarded)
    if pending is not None:
        return _prepare(chunk, keep_forwarded)
    try:
        own = _prepare(chunk, keep_forwarded)
        with _CACHE_LOCK:
            _CACHE[key] = (chunk, own)
            total = sum(len(c.text) for c, _ in _CACHE.values())
            while len(_CACHE) > 1 and (len(_CACHE) > _CACHE_MAX_ENTRIES or total > _CACHE_MAX_CHARS):
                old, _ = _CACHE.popitem(last=False)[1]
                total -= len(old.text)
        return own
    finally:
        with _CACHE_LOCK:
            _PENDING.pop(key)[1].set()


_INLINE_CHARS = 64 * 1024


def small_text(ctx: ScanContext) -> bool:
    """At most 64K characters of text to read: inline work, cheaper than a thread hop."""
    return sum(len(c.text) for c in ctx.extraction.chunks) <= _INLINE_CHARS


async def off_loop(fn: Callable[[ScanContext], list[Finding]], ctx: ScanContext) -> list[Finding]:
    """``fn(ctx)`` inline for small messages, in a worker thread past 64K characters of text."""
    if small_text(ctx):
        return fn(ctx)
    return await asyncio.to_thread(fn, ctx)


class OutboundTextScanner(abc.ABC):
    """A text scanner for what goes out: with ``external_only``, only mail to someone outside
    the organisation is read; bulk mail (newsletters, lists) only with ``include_bulk``.
    Subclasses set ``name`` and define ``_find(ctx)``."""

    name = ""
    external_only = False
    include_bulk = False

    @abc.abstractmethod
    def _find(self, ctx: ScanContext) -> list[Finding]:
        """The findings in the message's text (called only for mail this scanner reads)."""

    def _skipped(self, ctx: ScanContext) -> bool:
        return (self.external_only and not has_external_recipient(ctx)) or (not self.include_bulk and is_bulk(ctx))

    async def scan(self, ctx: ScanContext) -> list[Finding]:
        return [] if self._skipped(ctx) else await off_loop(self._find, ctx)

    def scan_sync(self, ctx: ScanContext) -> list[Finding]:
        return [] if self._skipped(ctx) else self._find(ctx)


def merge_same_place(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (kind, type, where): the one with the highest count, then confidence.

    A multipart/alternative message has its body twice (text and HTML), both
    extracted as ``body``; the same words must not count twice.
    """
    best: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.kind, f.type, f.where)
        old = best.get(key)
        if old is None or (f.count, f.confidence) > (old.count, old.confidence):
            best[key] = f
    return list(best.values())


def has_external_recipient(ctx: ScanContext) -> bool:
    """True when some envelope recipient is outside the organisation's internal domains."""
    return any(not ctx.organisation.is_internal(r) for r in ctx.envelope.rcpt_tos)


_BULK_PRECEDENCE = {"bulk", "list", "junk"}


def is_bulk(ctx: ScanContext) -> bool:
    """A newsletter or mailing-list message (List-Unsubscribe, List-Id, Precedence: bulk/list)."""
    msg = ctx.message
    if msg.header("List-Unsubscribe") or msg.header("List-Id"):
        return True
    return (msg.header("Precedence") or "").strip().lower() in _BULK_PRECEDENCE
