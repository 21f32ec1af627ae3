"""Detectors the policy file declares (``detectors:``), reported as ``custom:<name>``.

Each declared detector (relay.policy.schema.CustomDetector, duck-typed: name,
pattern, validator, keywords, window, confidence) runs its own pattern over
each chunk. ``validator`` (``luhn``, ``mod11``, ``mod97``) must pass on the
match's letters and digits. The declared confidence is what a validated match
gets; one of its keywords within ``window`` characters either side lifts it
one band; negative words nearer than any keyword drop it one band.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

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


def detect(cc: ChunkContext, detectors: Iterable[object], max_matches: int = 10_000) -> list[Hit]:
    hits = []
    for det in detectors:
        name = getattr(det, "name")
        pattern = getattr(det, "pattern")
        if isinstance(pattern, str):
            pattern = re.compile(pattern)
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
