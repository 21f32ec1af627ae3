"""ConfidentialScanner (clause 3.1): confidentiality markings and Microsoft sensitivity labels."""

from __future__ import annotations

import asyncio

import pytest

from relay.envelope import Envelope
from relay.extract import extract
from relay.findings import Confidence
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.confidential import ConfidentialScanner, sensitivity_labels

ORG = Organisation("Example", ("example.ac.uk",))
GUID = "f42aa342-8706-4288-bd11-ebb85995028c"
GUID2 = "87867195-f2b8-4ac2-b0b6-6bb73cb33afc"
DISCLAIMER = ("This email and any attachments are confidential and intended solely for the use of the "
              "individual or entity to whom they are addressed. If you have received this email in error "
              "please notify the sender and delete it.")


def scan(raw: bytes, scanner=None):
    message = parse(raw)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", ("bob@partner.org",)), ORG, extract(message))
    return asyncio.run((scanner or ConfidentialScanner()).scan(ctx))


def msip(name: str, guid: str = GUID, enabled: str = "true") -> str:
    return (f"MSIP_Label_{guid}_Enabled={enabled}; MSIP_Label_{guid}_SetDate=2026-03-03T10:00:00Z; "
            f"MSIP_Label_{guid}_Method=Standard; MSIP_Label_{guid}_Name={name}; "
            f"MSIP_Label_{guid}_SiteId=0b1c2d3e-0000-0000-0000-000000000000; MSIP_Label_{guid}_ContentBits=0")


@pytest.mark.parametrize(("subject", "body", "where", "confidence"), [
    ("CONFIDENTIAL: board papers", "Hi", "header Subject", Confidence.HIGH),
    ("Board papers", "Private and confidential\n\nDear Sam, ...", "body", Confidence.HIGH),
    ("Board papers", "Strictly private - please read.", "body", Confidence.HIGH),
    ("Tender", "Commercial in confidence.\nOur figures follow.", "body", Confidence.HIGH),
    ("Report", "OFFICIAL-SENSITIVE\n\nThe report is attached.", "body", Confidence.HIGH),
    ("Report", "Please keep this confidential until Friday.", "body", Confidence.MEDIUM),
    ("Confidential - staffing", "Hi", "header Subject", Confidence.HIGH),
    ("Plans", "These plans are SECRET.", "body", Confidence.HIGH),
])
def test_markers(make_message, subject, body, where, confidence):
    findings = scan(make_message(subject=subject, body=body))
    assert [(f.kind, f.type, f.where, f.confidence) for f in findings] == [
        ("confidential_marker", "marker", where, confidence)]


def test_standard_disclaimer_is_not_a_marker(make_message):
    body = f"Hi Sam,\n\nSee you on Friday.\n\nAlice\n\n{DISCLAIMER}\n"
    assert scan(make_message(body=body)) == []
    signed = f"Hi Sam,\n\nSee you on Friday.\n-- \nAlice\n{DISCLAIMER}\n"
    assert scan(make_message(body=signed)) == []


@pytest.mark.parametrize("body", [
    "We need a confidentiality agreement before the meeting.",
    "Restricted access to the car park on Monday.",
    "The committee used a secret ballot.",
    "The data is sensitive to temperature.",
    "ACME PRIVATE LIMITED invoice attached.",
])
def test_hard_negatives(make_message, body):
    assert scan(make_message(subject="Notes", body=body)) == []


def test_quoted_text_is_not_read_but_forwarded_is(make_message):
    quoted = "Thanks.\n\nOn Mon, 2 Mar 2026, Sam <s@partner.org> wrote:\n> CONFIDENTIAL: draft terms\n"
    assert scan(make_message(body=quoted)) == []
    forwarded = "FYI\n\n---------- Forwarded message ---------\nFrom: Sam\n\nCOMMERCIAL IN CONFIDENCE\n"
    assert [f.where for f in scan(make_message(body=forwarded))] == ["body"]


def test_marker_in_attached_document(make_message):
    raw = make_message(body="See attached.", attachments=[("memo.txt", b"CONFIDENTIAL\nMemo text", "text/plain")])
    findings = scan(raw)
    assert len(findings) == 1 and findings[0].where.endswith('"memo.txt"')


def test_sensitivity_label_header(make_message):
    raw = make_message(headers={"msip_labels": msip("Highly Confidential")})
    findings = scan(raw)
    assert [(f.type, f.evidence, f.where) for f in findings] == [
        ("sensitivity_label", "Highly Confidential", "header msip_labels")]


def test_public_and_disabled_labels_are_not_markers(make_message):
    assert scan(make_message(headers={"msip_labels": msip("Public")})) == []
    assert scan(make_message(headers={"msip_labels": msip("Confidential", enabled="false")})) == []
    only_general = ConfidentialScanner(ignore_labels=("general",))
    assert [f.evidence for f in scan(make_message(headers={"msip_labels": msip("Public")}), only_general)] == [
        "Public"]


def test_sensitivity_labels_parsing_folded_and_several():
    value = msip("Confidential") + ";\r\n " + msip("Internal", GUID2)
    assert sensitivity_labels(value) == ["Confidential", "Internal"]
    assert sensitivity_labels("garbage; MSIP_Label_x") == []


def test_outlook_sensitivity_header(make_message):
    findings = scan(make_message(headers={"Sensitivity": "Company-Confidential"}))
    assert [(f.type, f.where) for f in findings] == [("marker", "header Sensitivity")]
    assert scan(make_message(headers={"Sensitivity": "Normal"})) == []


def test_marker_in_reply_subject_still_marks_the_thread(make_message):
    findings = scan(make_message(subject="RE: CONFIDENTIAL - restructuring", body="Noted."))
    assert [(f.where, f.confidence) for f in findings] == [("header Subject", Confidence.HIGH)]


def test_marker_inside_a_message_forwarded_as_attachment_counts():
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["From"], inner["Subject"] = "ceo@example.ac.uk", "Restructuring"
    inner.set_content("STRICTLY CONFIDENTIAL: the plan.")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "alice@example.ac.uk", "bob@partner.org", "fyi"
    outer.set_content("See attached.")
    outer.add_attachment(inner)
    findings = scan(outer.as_bytes())
    assert [f.kind for f in findings] == ["confidential_marker"] and findings[0].where.startswith("part ")


def test_prose_confidential_in_a_document_is_weak(make_message):
    raw = make_message(body="Brochure attached.",
                       attachments=[("privacy.txt", b"We keep your details confidential.", "text/plain")])
    assert [f.confidence for f in scan(raw)] == [Confidence.LOW]
