"""Redacted evidence: enough shape for a reviewer, never the value.

Every finding's ``evidence`` is built here. Digits and letters are replaced
by ``•`` except for a few the reviewer needs to recognise the kind of number
(a NINO's prefix letters and suffix, a card's last four, an IBAN's country).
A value shorter than what would be kept is masked entirely.
"""

from __future__ import annotations

DOT = "•"


def mask(value: str, keep_end: int = 0, keep_start: int = 0) -> str:
    """Mask every letter/digit, keeping ``keep_start``/``keep_end`` of them; separators stay."""
    if value.isalnum():                 # no separators (most values): the same, without the per-character walk
        n = len(value)
        if n <= keep_start + keep_end + 3:
            keep_start = keep_end = 0
        return value[:keep_start] + DOT * (n - keep_start - keep_end) + (value[n - keep_end:] if keep_end else "")
    alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
    if len(alnum) <= keep_start + keep_end + 3:
        keep_start = keep_end = 0
    keep = set(alnum[:keep_start]) | set(alnum[len(alnum) - keep_end:] if keep_end else ())
    return "".join(ch if i in keep or not ch.isalnum() else DOT for i, ch in enumerate(value))


def nino(prefix: str, suffix: str) -> str:
    return f"{prefix.upper()} {DOT * 2} {DOT * 2} {DOT * 2} {suffix.upper()}"


def card(digits: str) -> str:
    if len(digits) == 15:
        return f"{DOT * 4} {DOT * 6} {DOT}{digits[-4:]}"
    return f"{DOT * 4} {DOT * 4} {DOT * 4} {DOT * (len(digits) - 16)}{digits[-4:]}".replace("  ", " ")


def grouped(digits: str, groups: tuple[int, ...], keep_end: int = 0) -> str:
    """``••• ••• ••••`` in the given grouping, keeping the last ``keep_end`` digits."""
    masked = mask(digits, keep_end=keep_end)
    out, pos = [], 0
    for g in groups:
        out.append(masked[pos:pos + g])
        pos += g
    if pos < len(masked):
        out.append(masked[pos:])
    return " ".join(p for p in out if p)


def iban(compact: str) -> str:
    masked = compact[:2] + DOT * (len(compact) - 6) + compact[-4:] if len(compact) > 10 else DOT * len(compact)
    return " ".join(masked[i:i + 4] for i in range(0, len(masked), 4))


def email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}{DOT * 3}@{domain}" if local else f"{DOT * 3}@{domain}"


def secret(label: str) -> str:
    return f"{label}{DOT * 8}"


def count_of(n: int, what: str) -> str:
    return f"{n} distinct {what}"
