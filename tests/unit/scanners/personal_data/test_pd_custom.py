import re
from dataclasses import dataclass

from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

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


_PATTERNS = [r"\bS\d{7}\b", r"(?i)\bstu-\d{4}\b", r"\b\d{3}-(\d{3})-\1\b", r"(?<=ref )\d{5}", r"\d{4}(?=X)",
             r"^[A-Z]{2}\d{6}$", r"(?m)^id \d+$", r"\w{3}\d{2}", r"[^\W\d_]{2}\d{8}"]
_PIECES = ["S1234567", "stu-4821", "STU-4821", "123-456-456", "123-456-457", "ref 12345", "1234X", "AB123456",
           "\n", "id 42", " ", "x", "\u0663\u0664\u0665", "S\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "é", "_",
           "ÄÖ12345678", "\u00a0", "\ud800"]


@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.sampled_from(_PATTERNS))
@hsettings(max_examples=300, deadline=None)
def test_the_hyperscan_prefilter_never_drops_a_match(pieces, pattern):
    """Hyperscan (prefilter mode, Unicode classes) must find a possible match wherever re finds one."""
    from relay.scanners.personal_data import custom
    from relay.scanners.personal_data.confidence import ChunkContext

    text = "".join(pieces)
    detector = [Detector("d", re.compile(pattern))]
    with_prefilter = custom.detect(ChunkContext(text), detector)
    reference = [m for m in re.finditer(pattern, text) if any(ch.isalnum() for ch in m.group())]
    assert len(with_prefilter) == len(reference)


def test_a_pattern_hyperscan_cannot_take_still_runs():
    from relay.scanners.personal_data import custom

    verbose = re.compile(r"S \d{7}  # a commented pattern", re.VERBOSE)
    assert custom._prefilter(verbose.pattern, verbose.flags) is None
    assert "custom:v" in by_type(find("id S1234567", detectors=[Detector("v", verbose)]))
