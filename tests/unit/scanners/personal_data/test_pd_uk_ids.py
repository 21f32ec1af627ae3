import pytest

from relay.findings import Confidence

from pd_helpers import find, types, utr_number

PASSPORT, LICENCE, UTR = "personal_data:uk_passport", "personal_data:uk_driving_licence", "personal_data:uk_utr"


@pytest.mark.parametrize("text", ["passport number 123456780", "Passport No. 532118994 expires 2031",
                                  "his passport (301234567)", "Name,Passport\nJo,502345678\n"])
def test_passport_with_keyword(text):
    assert types(text).get(PASSPORT) == Confidence.HIGH


@pytest.mark.parametrize("text", ["customer number 123456780", "serial 532118994", "passport 111111111"])
def test_passport_needs_keyword(text):
    assert PASSPORT not in types(text)


@pytest.mark.parametrize("text", ["driving licence MORGA753116SM9IJ", "MORGA753116SM9IJ", "LEE99753116SM9IJ ok",
                                  "licence: SMITH851234J99AB"])
def test_licence_found(text):
    assert types(text).get(LICENCE) == Confidence.HIGH


@pytest.mark.parametrize("text", ["MORGA753326SM9IJ", "MORGA702316SM9IJ", "XMORGA753116SM9IJ", "MORGA753116SM9IJX"])
def test_licence_bad_dates_or_shape(text):
    assert LICENCE not in types(text)


def test_utr():
    value = utr_number()
    assert types(f"UTR {value}")[UTR] == Confidence.HIGH
    assert types(f"Unique Taxpayer Reference: {value[:5]} {value[5:]}")[UTR] == Confidence.HIGH
    assert UTR not in types(f"number {value}")
    bad = str((int(value[0]) + 1) % 10) + value[1:]
    assert UTR not in types(f"UTR {bad}")


def test_evidence_masked():
    for text, raw in (("passport number 532118994", "532118994"), ("licence MORGA753116SM9IJ", "MORGA753116SM9IJ"),
                      (f"UTR {utr_number()}", utr_number())):
        (f,) = find(text)
        assert raw not in f.evidence.replace(" ", "")
