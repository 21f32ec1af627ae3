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
    ("Re: confidential: draft terms", "Hi", "header Subject", Confidence.HIGH),
    ("Board papers (confidential)", "Hi", "header Subject", Confidence.HIGH),
    ("Re: I'll keep this confidential", "Hi", "header Subject", Confidence.MEDIUM),
    ("Our confidential helpline", "Hi", "header Subject", Confidence.MEDIUM),
    ("Plan", "STRICTLY CONFIDENTIAL\nHi Bob, the plan is below.\nAlice\n" + DISCLAIMER, "body", Confidence.HIGH),
    ("Plan", "Hi Bob,\n\nSTRICTLY PRIVATE: the plan.\n\nAlice\n\n" + DISCLAIMER, "body", Confidence.HIGH),
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


# Footers mail systems add to every message (UK and US wordings); each is placed after a
# sign-off with a blank line, with none, and under a signature: none is a marking.
DISCLAIMERS = {
    "uk-files": "This email and any files transmitted with it are confidential and intended solely for the use of "
                "the individual or entity to whom they are addressed. If you have received this email in error "
                "please notify the system manager. If you are not the named addressee you should not disseminate, "
                "distribute or copy this e-mail.",
    "uk-heading": "PRIVATE AND CONFIDENTIAL\nThis e-mail message is intended only for the addressee(s) and may "
                  "contain privileged information. If you are not the addressee, you may not copy, disclose or use "
                  "its contents.",
    "uk-heading-paragraph": "STRICTLY CONFIDENTIAL\n\nThis e-mail and any attachments are intended solely for "
                            "the addressee. If you have received it in error please delete it.",
    "uk-law-firm": "This email is confidential and may be privileged. If you are not the intended recipient please "
                   "notify the sender immediately and delete the email from your system. Smith & Co LLP is a "
                   "limited liability partnership registered in England and Wales with number OC123456.",
    "uk-nhs": "This message may contain confidential information. If you are not the intended recipient please "
              "inform the sender that you have received the message in error before deleting it.",
    "uk-wrapped": "This message is private and confidential.\nIf you have received this message in error, please "
                  "notify us and remove it from your system.",
    "uk-caps": "NOTICE: This email and any attachments are STRICTLY CONFIDENTIAL and may be legally privileged. If "
               "you are not the intended recipient please notify the sender and delete it.",
    "us-notice": "CONFIDENTIALITY NOTICE: This e-mail message, including any attachments, is for the sole use of "
                 "the intended recipient(s) and may contain confidential and privileged information. Any "
                 "unauthorized review, use, disclosure or distribution is prohibited. If you are not the intended "
                 "recipient, please contact the sender by reply e-mail and destroy all copies of the original "
                 "message.",
    "us-hipaa": "CONFIDENTIALITY NOTICE: This message and any attachments may contain Protected Health Information "
                "that is confidential and privileged under state and federal law. If you are not the intended "
                "recipient, you are hereby notified that any review, dissemination, distribution, or copying of "
                "this communication is strictly prohibited.",
    "us-starred": "*** PRIVILEGED & CONFIDENTIAL ***\nThis email is intended solely for the addressee. If you have "
                  "received it in error, please notify the sender and delete it.",
}


@pytest.mark.parametrize("disclaimer", DISCLAIMERS.values(), ids=DISCLAIMERS.keys())
@pytest.mark.parametrize("layout", ["Alice\n\n{}\n", "Alice\n{}\n", "-- \nAlice Archer\nHead of Studios\n\n{}\n"],
                         ids=["paragraph", "no-blank-line", "signature"])
def test_disclaimer_footers_are_no_marking(make_message, disclaimer, layout):
    body = "Hi Bob,\n\nSee you on Friday.\n\nBest wishes,\n" + layout.format(disclaimer)
    assert scan(make_message(subject="Friday", body=body)) == []


def test_disclaimer_footer_in_html_is_no_marking():
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.ac.uk", "bob@partner.org", "Friday"
    msg.set_content("<p>Hi Bob,</p><p>See you on Friday.</p><p>Alice</p><p><small>PRIVATE AND CONFIDENTIAL<br>"
                    "This e-mail is intended solely for the addressee. If you have received it in error please "
                    "notify the sender.</small></p>", subtype="html")
    assert scan(msg.as_bytes()) == []


@pytest.mark.parametrize("body", [
    "Thank you, I'll keep this confidential.",
    "Everything you tell the counsellor is confidential.",
    "Our confidential helpline is open every day.",
])
def test_confidential_in_prose_is_no_marking(make_message, body):
    assert [f.confidence for f in scan(make_message(subject="Notes", body=body))] == [Confidence.MEDIUM]


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
    interleaved = "> STRICTLY PRIVATE\n> Can you come?\n\nYes, Friday suits me.\n"
    assert scan(make_message(body=interleaved)) == []
    outlook = ("Noted, thanks.\n\n-----Original Message-----\nFrom: Sam\nSent: Monday\nTo: Alice\n"
               "Subject: Terms\n\nCOMMERCIAL IN CONFIDENCE\n")
    assert scan(make_message(body=outlook)) == []
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


@pytest.mark.parametrize(("label", "confidence"), [
    ("Confidential", Confidence.HIGH), ("Highly Confidential", Confidence.HIGH),
    ("Confidential\\Recipients Only", Confidence.HIGH), ("OFFICIAL-SENSITIVE", Confidence.HIGH),
    ("Secret", Confidence.HIGH), ("Restricted", Confidence.HIGH),
    ("Internal", Confidence.MEDIUM), ("Staff only", Confidence.MEDIUM),
])
def test_labels_of_confidential_or_higher_are_high(make_message, label, confidence):
    assert [f.confidence for f in scan(make_message(headers={"msip_labels": msip(label)}))] == [confidence]


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
