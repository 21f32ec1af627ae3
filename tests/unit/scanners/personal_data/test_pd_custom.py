import re
from dataclasses import dataclass

from relay.findings import Confidence

from pd_helpers import card, find, nhs


@dataclass(frozen=True)
class Detector:                      # duck-typed like relay.policy.schema.CustomDetector
    name: str
    pattern: re.Pattern
    validator: str = ""
    keywords: tuple = ()
    window: int = 60
    confidence: str = "medium"


STUDENT = Detector("student_id", re.compile(r"\bS\d{7}\b"), keywords=("student", "student number"))


def by_type(findings):
    return {f.type: f for f in findings}


def test_declared_confidence_and_keyword_lift():
    assert by_type(find("ref S1234567", detectors=[STUDENT]))["custom:student_id"].confidence == Confidence.LOW
    assert by_type(find("see S1234567", detectors=[STUDENT]))["custom:student_id"].confidence == Confidence.MEDIUM
    assert by_type(find("student S1234567", detectors=[STUDENT]))["custom:student_id"].confidence == Confidence.HIGH


def test_validators():
    luhn = Detector("acct", re.compile(r"\b\d{16}\b"), validator="luhn", confidence="high")
    good = card("4")
    assert "custom:acct" in by_type(find(f"x {good}", detectors=[luhn]))
    assert "custom:acct" not in by_type(find(f"x {good[:-1]}{(int(good[-1]) + 1) % 10}", detectors=[luhn]))
    mod11 = Detector("m11", re.compile(r"\b\d{10}\b"), validator="mod11")
    assert "custom:m11" in by_type(find(f"x {nhs('485777345')}", detectors=[mod11]))
    assert "custom:m11" not in by_type(find("x 4857773450", detectors=[mod11]))
    mod97 = Detector("m97", re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b"), validator="mod97")
    assert "custom:m97" in by_type(find("x GB82WEST12345698765432", detectors=[mod97]))
    assert "custom:m97" not in by_type(find("x GB83WEST12345698765432", detectors=[mod97]))


def test_counts_distinct_and_redacts():
    (f,) = find("S1234567 S1234567 S7654321", detectors=[STUDENT])
    assert f.count == 2 and "1234567" not in f.evidence and "7654321" not in f.evidence
