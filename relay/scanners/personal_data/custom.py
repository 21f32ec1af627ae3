"""Detectors the policy file declares (``detectors:``), reported as ``custom:<name>``.

Each declared detector (relay.policy.schema.CustomDetector, duck-typed: name,
pattern, validator, keywords, window, confidence) runs its own pattern over
each chunk. ``validator`` (``luhn``, ``mod11``, ``mod97``) must pass on the
match's letters and digits. The declared confidence is what a validated match
gets; one of its keywords within ``window`` characters either side lifts it
one band; negative words nearer than any keyword drop it one band.

Python's ``re`` tries a pattern such as the shipped student number's at every position
(~1 ms per 20 KB, the largest cost of scanning ordinary mail), so each pattern
is also compiled for Hyperscan in prefilter mode (it may match more than the
pattern, never less; Unicode classes) and ``re`` runs only on text where
Hyperscan found a possible match. A pattern Hyperscan cannot take, or text
that is not valid UTF-8 (lone surrogates), goes to ``re`` directly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache

import hyperscan

from relay.findings import Confidence

from . import redact
from .confidence import NEGATIVE, ChunkContext, Hit, words
from .validators import luhn_ok, mod11_ok, mod97_ok

_LEVELS = {"low": Confidence.LOW, "medium": Confidence.MEDIUM, "high": Confidence.HIGH}
_VALIDATORS = {
    "": lambda v: True,
    "luhn": lambda v: v.isdigit() and luhn_ok(v),
    "mod11": mod11_ok,
    "mod97": lambda v: len(v) > 2 and mod97_ok(v),
}


@lru_cache(maxsize=256)
def _keywords(items: tuple[str, ...]) -> re.Pattern[str] | None:
    return words(items) if items else None


_HS_FLAGS = ((re.IGNORECASE, hyperscan.HS_FLAG_CASELESS), (re.DOTALL, hyperscan.HS_FLAG_DOTALL),
             (re.MULTILINE, hyperscan.HS_FLAG_MULTILINE))
_local = threading.local()


@lru_cache(maxsize=256)
def _prefilter(pattern: str, flags: int) -> hyperscan.Database | None:
    hs_flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP | hyperscan.HS_FLAG_SINGLEMATCH
    for re_flag, hs_flag in _HS_FLAGS:
        if flags & re_flag:
            hs_flags |= hs_flag
    if flags & re.VERBOSE:
        return None
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(expressions=[pattern.encode("utf-8")], ids=[0], elements=1, flags=[hs_flags])
    except (hyperscan.error, UnicodeEncodeError):
        return None
    return db


def _may_match(pattern: re.Pattern[str], data: bytes | None) -> bool:
    """False only when Hyperscan's superset of ``pattern`` finds nothing in ``data``."""
    db = _prefilter(pattern.pattern, pattern.flags) if data is not None else None
    if db is None:
        return True
    scratches = getattr(_local, "scratches", None)
    if scratches is None:
        scratches = _local.scratches = {}
    scratch = scratches.get(id(db))
    if scratch is None or scratch[0] is not db:
        scratch = scratches[id(db)] = (db, hyperscan.Scratch(db))
    found: list[int] = []
    db.scan(data, match_event_handler=lambda *_: found.append(1), scratch=scratch[1])
    return bool(found)


def detect(cc: ChunkContext, detectors: Iterable[object], max_matches: int = 10_000) -> list[Hit]:
    hits = []
    try:
        data: bytes | None = cc.text.encode("utf-8")
    except UnicodeEncodeError:          # lone surrogates: not UTF-8, Hyperscan cannot read it
        data = None
    for det in detectors:
        name = getattr(det, "name")
        pattern = getattr(det, "pattern")
        if isinstance(pattern, str):
            pattern = re.compile(pattern)
        if not _may_match(pattern, data):
            continue
        validate = _VALIDATORS.get(getattr(det, "validator", "") or "", _VALIDATORS[""])
        keywords = _keywords(tuple(getattr(det, "keywords", ()) or ()))
        window = int(getattr(det, "window", 60) or 60)
        base = _LEVELS.get(str(getattr(det, "confidence", "medium")).lower(), Confidence.MEDIUM)
        for n, m in enumerate(pattern.finditer(cc.text)):
            if n >= max_matches:
                break
            raw = m.group()
            compact = "".join(ch for ch in raw if ch.isalnum())
            if not compact or not validate(compact):
                continue
            start, end = m.span()
            pos_dist, spans = cc.nearest(keywords, start, end, window) if keywords else (-1, [])
            neg_dist, _ = cc.nearest(NEGATIVE, start, end, window, exclude=spans)
            conf = base
            if pos_dist >= 0 and (neg_dist < 0 or pos_dist <= neg_dist):
                conf = Confidence(min(Confidence.HIGH, conf + 1))
            elif neg_dist >= 0:
                conf = Confidence(max(Confidence.LOW, conf - 1))
            hits.append(Hit("personal_data", f"custom:{name}", compact.upper(), conf,
                            redact.mask(raw, keep_end=2), start))
    return hits
