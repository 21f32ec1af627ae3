"""relay.scanners.personal_data.spans: where the detector's hits sit in the text (for masked previews)."""

from __future__ import annotations

import pytest

from relay.scanners.personal_data import spans


def found(text: str) -> list[tuple[str, str]]:
    return [(kind, text[start:end]) for start, end, kind in spans(text)]


@pytest.mark.parametrize("text, expected", [
    ("Employee: NI number AB 12 34 56 C today.", ("personal_data", "AB 12 34 56 C")),
    ("Her NHS number is 943 476 5919, thanks.", ("personal_data", "943 476 5919")),
    ("Passport number 123456789 on file.", ("personal_data", "123456789")),
    ("Date of birth: 3 March 1985\n", ("personal_data", "3 March 1985")),
    ("DOB: 14/02/1979.", ("personal_data", "14/02/1979")),
    ("Please call Sam on 0161 496 0000 about it.", ("personal_data", "0161 496 0000")),
    ("Her address is 12 Acacia Avenue, Leeds LS6 2AB.", ("personal_data", "12 Acacia Avenue, Leeds LS6 2AB")),
    ("Address:\n12 Acacia Avenue\nLeeds\nLS6 2AB\n", ("personal_data", "12 Acacia Avenue\nLeeds\nLS6 2AB")),
    ("the wifi password: hunter2xyz\nbye", ("credential", "password: hunter2xyz")),
    ("Priya Shah has been diagnosed with HIV.", ("special_category", "HIV")),
])
def test_each_hit_covers_the_text_it_was_read_from(text, expected):
    assert expected in found(text)


def test_offsets_hold_through_no_break_spaces_and_unicode_dashes():
    text = "NI number AB\u00a012\u00a034\u00a056\u00a0C and 943\u2013476\u20135919"
    assert [t for _, t in found(text)] == ["AB\u00a012\u00a034\u00a056\u00a0C", "943\u2013476\u20135919"]


def test_nothing_in_ordinary_text():
    assert spans("The board meets in March; revenue grew 12 percent. Room 4 at 10:30.") == []
