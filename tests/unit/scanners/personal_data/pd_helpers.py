"""Valid values built with stdnum, so tests never depend on hand-computed check digits."""

from __future__ import annotations

from stdnum import iban, luhn
from stdnum.gb import utr

from relay.extract import TextChunk
from relay.scanners.personal_data import detect


def card(prefix: str, length: int = 16) -> str:
    body = prefix + "1357924680135792468"[: length - len(prefix) - 1]
    return body + luhn.calc_check_digit(body)


def nhs(body9: str) -> str:
    total = sum(int(c) * w for c, w in zip(body9, range(10, 1, -1)))
    check = 11 - total % 11
    assert check != 10, "pick another body"
    return body9 + str(0 if check == 11 else check)


def gb_iban(bank: str = "NWBK", sort: str = "601613", account: str = "31926810") -> str:
    bban = bank + sort + account
    return "GB" + iban.calc_check_digits("GB00" + bban) + bban


def utr_number(body9: str = "955839661") -> str:
    return utr.calc_check_digit(body9) + body9


def find(text: str, where: str = "body", source: str = "body", **kw):
    return detect([TextChunk(where, text, source)], **kw)


def types(text: str, minimum: int = 1, **kw) -> dict[str, int]:
    """{"kind:type": best confidence} for findings at or above ``minimum``."""
    out: dict[str, int] = {}
    for f in find(text, **kw):
        if f.confidence >= minimum:
            key = f"{f.kind}:{f.type}"
            out[key] = max(out.get(key, 0), int(f.confidence))
    return out
