import pytest

from relay.findings import Confidence

from pd_helpers import find, nhs, types

NHS = "personal_data:nhs_number"
GOOD = nhs("485777345")
SPACED = f"{GOOD[:3]} {GOOD[3:6]} {GOOD[6:]}"


@pytest.mark.parametrize("text", [f"NHS number {SPACED}", f"NHS No: {GOOD}", f"{SPACED} (NHS)",
                                  f"Name,NHS Number\nJo Bloggs,{SPACED}\n"])
def test_corroborated_is_high(text):
    assert types(text).get(NHS) == Confidence.HIGH


def test_checksum_alone_is_not_high():
    assert types(f"please see {SPACED} today").get(NHS) == Confidence.MEDIUM
    assert types(f"please see {GOOD} today").get(NHS) == Confidence.LOW


@pytest.mark.parametrize("text", [f"NHS number {GOOD[:-1]}{(int(GOOD[-1]) + 1) % 10}", "NHS number 4444444444",
                                  f"NHS number {nhs('999123457')}", "NHS number 123 456 7890"])
def test_invalid_or_test_numbers(text):
    assert NHS not in types(text)


def test_negative_context():
    assert types(f"Ticket {GOOD} updated").get(NHS, 0) == Confidence.LOW


def test_evidence_is_masked():
    (f,) = find(f"NHS number {SPACED}")
    assert f.evidence == "••• ••• ••••" and GOOD not in f.evidence


def test_patient_word_corroborates():
    assert types(f"Re: patient {GOOD} - appointment moved").get(NHS) == Confidence.HIGH
