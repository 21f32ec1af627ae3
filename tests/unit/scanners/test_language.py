"""LanguageScanner (clauses 3.1.2, 3.2-3.4): abusive, intimidating and disparaging language."""

from __future__ import annotations

import asyncio

import pytest

from relay.envelope import Envelope
from relay.extract import extract
from relay.findings import TYPES, Confidence
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.language import CATEGORIES, LanguageScanner
from relay.scanners.data import load_lexicon

ORG = Organisation("Example", ("example.ac.uk",))


def scan(raw: bytes, scanner=None):
    message = parse(raw)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", ("bob@example.ac.uk",)), ORG, extract(message))
    return asyncio.run((scanner or LanguageScanner()).scan(ctx))


def body_findings(make_message, text):
    return [f for f in scan(make_message(body=text)) if f.where == "body"]


@pytest.mark.parametrize(("text", "category", "confidence"), [
    ("You are such an idiot, honestly.", "disparaging", Confidence.HIGH),
    ("What a bunch of clowns in that department.", "disparaging", Confidence.HIGH),
    ("She\u2019s completely useless at this.", "disparaging", Confidence.HIGH),
    ("Do that again and you'll regret it.", "intimidating", Confidence.HIGH),
    ("I know where you live.", "intimidating", Confidence.HIGH),
    ("Fix it or else.", "intimidating", Confidence.MEDIUM),
    ("This is bullshit.", "abusive", Confidence.MEDIUM),
    ("Stop being a wanker.", "abusive", Confidence.HIGH),
    ("What a bloody mess.", "abusive", Confidence.LOW),
    ("Between you and me, he is leaving.", "disparaging", Confidence.LOW),
    ("What the f*ck happened to the budget?", "abusive", Confidence.MEDIUM),
])
def test_categories_and_confidence(make_message, text, category, confidence):
    findings = body_findings(make_message, f"Hi,\n\n{text}\n\nAlice\n")
    assert [(f.kind, f.type, f.confidence) for f in findings] == [("abusive_language", category, confidence)]


def test_evidence_is_masked_and_counted(make_message):
    findings = body_findings(make_message, "You moron. Total moron. Idiots, all of you.")
    assert len(findings) == 1
    f = findings[0]
    assert (f.type, f.count) == ("abusive", 3)
    assert f.evidence == "m****, i*****"
    assert "moron" not in f.evidence


@pytest.mark.parametrize("text", [
    "The Scunthorpe office sent its assessment of the classic therapist training.",
    "Please kill the process and restart the master/slave replication.",
    "Terminate the job, abort the build, and execute the script; the node is dead.",
    "This function is useless for large inputs; use lazy loading. A stupid bug, fixed now.",
    "Set the dummy variable and hang the pictures in the hall.",
    "Dick Whittington was mayor; the stopcock is by the door knob.",
    "Push the branch with git and check the slag heap data from the blue tit survey.",
    "We flagged it as a final written warning under the HR procedure.",
    "He is the best lecturer we have.",
])
def test_hard_negatives(make_message, text):
    assert scan(make_message(body=text, subject="Notes")) == []


def test_quoted_reply_is_not_counted_against_sender(make_message):
    body = ("I am sorry you received this, I have reported it.\n\n"
            "On Tue, 3 Mar 2026 at 10:00, Troll <troll@x.org> wrote:\n> You are a useless idiot, watch your back.\n")
    assert scan(make_message(body=body)) == []
    interleaved = "> You moron\nPlease do not write to me like that.\n> Shut up\nThanks."
    assert scan(make_message(body=interleaved)) == []


def test_outlook_quoted_block_is_not_counted(make_message):
    body = ("Forwarding to HR as evidence.\n\nFrom: Troll <troll@x.org>\nSent: 03 March 2026 10:00\n"
            "To: Alice\nSubject: you\n\nYou are pathetic.\n")
    assert scan(make_message(body=body)) == []


def test_subject_and_attachment_are_scanned(make_message):
    raw = make_message(subject="you idiot", body="See attached.",
                       attachments=[("note.txt", b"I will make your life hell.", "text/plain")])
    found = {(f.where if f.where.startswith("header") else f.where.rsplit(" ", 1)[-1], f.type, f.confidence)
             for f in scan(raw)}
    # the phrase is [high]; in an attached document it counts one step lower
    assert found == {("header Subject", "abusive", Confidence.MEDIUM), ('"note.txt"', "intimidating", Confidence.MEDIUM)}


def test_lexicons_are_documented_and_sections_known():
    for category in CATEGORIES:
        lexicon = load_lexicon(f"{category}.txt")
        assert set(lexicon) <= {"high", "medium", "low"}
        assert sum(len(v) for v in lexicon.values()) > 10
    assert set(CATEGORIES) == set(TYPES["abusive_language"])


def test_html_reply_quote_is_not_counted(make_message):
    raw = (b"From: alice@example.ac.uk\r\nTo: bob@example.ac.uk\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n"
           b"<div>Noted, thank you.</div>\r\n"
           b"<div class=\"gmail_quote\"><div class=\"gmail_attr\">On Tue, 3 Mar 2026 at 10:00, Troll "
           b"&lt;troll@x.org&gt; wrote:<br></div>\r\n"
           b"<blockquote>You are a useless idiot.</blockquote></div>\r\n")
    assert scan(raw) == []
    rude = raw.replace(b"Noted, thank you.", b"You moron.")
    assert [f.type for f in scan(rude)] == ["abusive"]


@pytest.mark.parametrize("subject", ["Re: you idiot", "RE: Fwd: you idiot", "AW: you idiot", "Re[2]: you idiot"])
def test_reply_subject_repeats_someone_elses_words(make_message, subject):
    assert scan(make_message(subject=subject, body="Please do not write like that.")) == []


def test_own_subject_counts(make_message):
    assert [f.where for f in scan(make_message(subject="Regarding: you idiot", body="x"))] == ["header Subject"]


def test_message_forwarded_as_attachment_is_not_the_senders_language():
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["From"], inner["Subject"] = "troll@x.org", "you idiot"
    inner.set_content("You are a useless idiot.")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "alice@example.ac.uk", "hr@example.ac.uk", "Complaint"
    outer.set_content("Forwarding this as evidence.")
    outer.add_attachment(inner)
    assert scan(outer.as_bytes()) == []
    outer.replace_header("Subject", "Complaint about this moron")
    assert [f.where for f in scan(outer.as_bytes())] == ["header Subject"]
