import pytest

from relay.findings import Confidence

from pd_helpers import find, types


@pytest.mark.parametrize("text,category", [
    ("Mr Patel has been diagnosed with diabetes.", "health"),
    ("She has been diagnosed with depression.", "health"),
    ("The patient is pregnant.", "health"),
    ("Priya Shah is a practising Muslim.", "religion"),
    ("Our employee is a union member.", "trade_union"),
    ("Ms Jones was convicted of theft in 2015.", "criminal"),
    ("Tom Evans is gay and asked us to keep it private.", "sexual_orientation"),
    ("Dr Okafor's ethnic origin is recorded as Black African.", "ethnicity"),
    ("Mrs Hill's genetic test showed BRCA1.", "genetic"),
    ("We store the student's fingerprint template.", "biometric"),
    ("Mr Green is a member of the Labour Party.", "political"),
])
def test_term_near_identified_person(text, category):
    assert types(text).get(f"special_category:{category}") == Confidence.HIGH


@pytest.mark.parametrize("text", [
    "Reading list: Sociology of Religion; Health and Illness; Islam in Modern Britain.",
    "Depression and anxiety are common; see the guidance.",
    "The European Union and the UK signed the agreement.",
    "Dear Christian,\nthe report is attached.",
    "Christian Mason will join the call.",
    "Mail christian.dixon@gmail.com for details.",
])
def test_topics_and_names_are_not_findings(text):
    assert not any(k.startswith("special_category") for k in types(text))


def test_topic_words_on_the_line_lower_to_low():
    t = types("Mental Health Awareness Week: Dr Smith will give a talk on depression.")
    assert t.get("special_category:health") == Confidence.LOW


def test_job_title_in_signature_ignored():
    text = "See you then.\n\nKind regards,\nAnna Day\nProbation officer\nLearning disability nurse\n"
    assert types(text) == {}


def test_person_identified_by_an_identifier():
    t = types("NI number AB123456C - diagnosis: epilepsy")
    assert t["special_category:health"] == Confidence.HIGH


def test_evidence_does_not_repeat_the_term():
    (f,) = [f for f in find("Mr Patel has epilepsy.") if f.kind == "special_category"]
    assert "epilepsy" not in f.evidence and "Patel" not in f.evidence


@pytest.mark.parametrize("text", ["Sarah from accounts has been signed off sick with stress.",
                                  "Sarah has been off with depression, please keep this between us."])
def test_given_name_as_subject(text):
    assert types(text).get("special_category:health") == Confidence.HIGH


def test_any_proper_name_as_subject_but_not_organisations():
    assert types("Zainab Okonkwo is a practising Muslim.")["special_category:religion"] == Confidence.HIGH
    assert types("Labour Party has members in the union; union membership is up.") == {}
    assert "special_category:health" not in types("Public Health is reviewing cancer screening.")
