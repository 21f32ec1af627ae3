import pytest

from relay.findings import Confidence

from pd_helpers import find, types

NINO = "personal_data:uk_nino"


@pytest.mark.parametrize("text", ["NI number AB123456C please", "National Insurance: AB 12 34 56 C.",
                                  "nino: ab123456c", "NI no AB-12-34-56-C", "(JG 10 37 58 A)",
                                  "Her details: CE 99 88 77 D"])
def test_valid_forms_are_high(text):
    assert types(text).get(NINO) == Confidence.HIGH


@pytest.mark.parametrize("text", ["code DA123456C", "GB123456A", "TN 12 34 56 A", "AB123456E", "QQ 12 34 56 C",
                                  "XAB123456C", "AB123456CD", "AB1234567C", "AB 00 00 00 A", "OO123456A"])
def test_invalid_are_ignored(text):
    assert NINO not in types(text)


def test_lower_case_without_keyword_is_medium():
    assert types("ref ab123456c")[NINO] <= Confidence.MEDIUM
    assert types("see ab123456c for details")[NINO] == Confidence.MEDIUM


def test_negative_context_lowers():
    assert types("Part number AB123456C in stock")[NINO] < Confidence.HIGH


def test_redacted_evidence_and_distinct_count():
    (f,) = find("NI AB123456C, again AB 12 34 56 C, and CE998877D")
    assert f.count == 2
    assert f.evidence == "AB •• •• •• C"
    assert "123456" not in f.evidence


def test_six_digit_block_with_spaced_letters():
    assert types("NI number AB 123456 C")[NINO] == Confidence.HIGH


def test_followed_by_capitals_is_still_a_nino():
    t = types("NINO AB123456C AND THE OTHER ONE CE 99 88 77 D PLEASE")
    assert t[NINO] == Confidence.HIGH
    (f,) = [f for f in find("AB123456C AB123456C CE998877D ZZ") if f.type == "uk_nino"]
    assert f.count == 2
