"""FiguresScanner (clause 4.2): money figures must be written in words and numbers, and agree."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.envelope import Envelope
from relay.extract import extract
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.figures import FiguresScanner, check_figures, words_to_amount

ORG = Organisation("Example", ("example.ac.uk",))


def scan(raw: bytes, rcpts=("buyer@supplier.com",), scanner=None):
    message = parse(raw)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", tuple(rcpts)), ORG, extract(message))
    return asyncio.run((scanner or FiguresScanner()).scan(ctx))


def kinds(text: str) -> list[tuple[str, str]]:
    return [(kind, currency) for kind, currency, _ in check_figures(text)]


@pytest.mark.parametrize(("text", "currency"), [
    ("The fee is £1,250.", "gbp"),
    ("A budget of $3.5m for the year", "usd"),
    ("The deposit is €200 per person", "eur"),
    ("We can pay GBP 1,250 on delivery", "gbp"),
    ("That comes to 1,250 EUR in total", "eur"),
    ("It will cost 400 pounds", "gbp"),
    ("Prices from US$99", "usd"),
    ("Only £2k left", "gbp"),
])
def test_unworded_figures(text, currency):
    assert kinds(text) == [("unworded_figure", currency)]


@pytest.mark.parametrize("text", [
    "The fee is £1,250 (one thousand two hundred and fifty pounds).",
    "£1,250 (one thousand, two hundred and fifty pounds)",
    "£1,250 (one thousand two hundred and fifty)",
    "£1,250 (twelve hundred and fifty pounds)",
    "one thousand two hundred and fifty pounds (£1,250)",
    "£12.50 (twelve pounds fifty)",
    "£12.50 (twelve pounds and fifty pence)",
    "£0.50 (fifty pence)",
    "£2.5m (two point five million pounds)",
    "$3.5 million (three and a half million dollars)",
    "£2k (two thousand pounds)",
    "GBP 1,250 (one thousand two hundred and fifty pounds sterling)",
    "€99.99 - ninety-nine euros ninety-nine cents",
    "USD 40 (forty dollars)",
    "£100 (a hundred pounds)",
    "£1,000,000 (one million pounds)",
])
def test_worded_figures_pass(text):
    assert kinds(text) == []


@pytest.mark.parametrize("text", [
    "£1,250 (one thousand two hundred pounds)",
    "£12.50 (twelve pounds)",
    "£5 (five euros)",
    "two thousand pounds (£200)",
    "£2.5m (two point five thousand pounds)",
])
def test_words_that_disagree_are_a_mismatch(text):
    assert [k for k, _ in kinds(text)] == ["figure_mismatch"]


@pytest.mark.parametrize("text", [
    "Meeting on 12/03/2026 at 10.30, room 2.14",
    "Call me on 020 7946 0000 or +44 7700 900123",
    "Upgrade to version 1.2.3 and then 2.0",
    "A 15% discount and 3.5% interest",
    "We expect 1,250 visitors and 30 stalls",
    "Use $1.2.3 as the tag",
    "The invoice number is 2026-0042",
])
def test_hard_negatives_have_no_currency(text):
    assert kinds(text) == []


@pytest.mark.parametrize("text", ["£1,250 (excluding VAT)", "£10 (five to ten pounds per head)", "£40 (approx.)"])
def test_brackets_saying_something_else_leave_the_figure_unworded(text):
    assert [k for k, _ in kinds(text)] == ["unworded_figure"]


def test_number_words_nearby_without_brackets_or_currency_are_not_the_amount():
    # "two" belongs to the sentence, not to the figure: unworded, not a mismatch
    assert kinds("costs £5, two of which are paid") == [("unworded_figure", "gbp")]


def test_words_to_amount():
    assert words_to_amount("twelve pounds fifty".split()) == Decimal("12.50")
    assert words_to_amount("one point two five million".split()) == Decimal("1250000.00")
    assert words_to_amount("twelve hundred and fifty".split()) == 1250
    assert words_to_amount("pounds only".split()) is None


def test_scanner_counts_per_currency_and_gives_shape_not_value(make_message):
    body = "Hi,\n\nThe room is £1,250 and catering £480.\nThe speaker wants $900 (nine hundred dollars).\n"
    findings = scan(make_message(body=body))
    assert [(f.kind, f.type, f.count, f.where) for f in findings] == [("unworded_figure", "gbp", 2, "body")]
    assert findings[0].evidence == "£#,###"
    assert "1,250" not in findings[0].evidence


def test_quoted_reply_figures_are_not_the_senders(make_message):
    body = "Agreed, thanks.\n\nOn Mon, 2 Mar 2026, Sam <sam@supplier.com> wrote:\n> The total is £4,999.\n"
    assert scan(make_message(body=body)) == []
    body2 = "> The total is £4,999.\nFine, see you then."
    assert scan(make_message(body=body2)) == []


def test_subject_is_read_attachments_are_not(make_message):
    raw = make_message(subject="Quote: £1,250", body="See attached.",
                       attachments=[("prices.csv", b"item,price\nchair,\xc2\xa345\n", "text/csv")])
    findings = scan(raw)
    assert [(f.kind, f.where) for f in findings] == [("unworded_figure", "header Subject")]


def test_multipart_alternative_body_counts_once(make_message):
    raw = (b"From: alice@example.ac.uk\r\nTo: b@supplier.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe fee is \xc2\xa3300.\r\n"
           b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>The fee is &pound;300.</p>\r\n--b--\r\n")
    findings = scan(raw)
    assert [(f.kind, f.count) for f in findings] == [("unworded_figure", 1)]


def test_bulk_mail_and_external_only(make_message):
    raw = make_message(body="Tickets £25", headers={"Precedence": "bulk"})
    assert scan(raw) == []
    internal = make_message(body="Tickets £25", to="bob@example.ac.uk")
    assert scan(internal, ("bob@example.ac.uk",), FiguresScanner(external_only=True)) == []
    assert len(scan(internal, ("bob@example.ac.uk",))) == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("£5 pounds", [("£", "5", "")]),
    ("GBP1,250 and 3 EUR", [("gbp", "1,250", ""), ("eur", "3", "")]),
    ("US$5", [("us$", "5", "")]),
    ("1.5m euros", [("euro", "1.5", "m")]),
    ("10 dollars.", [("dollar", "10", "")]),
    ("Poundland 5, 5 poundland, eurostar 5, thusd 4, x£5", []),
])
def test_find_money(text, expected):
    from relay.scanners.figures import find_money
    assert [(mark, number, suffix) for _, _, mark, number, suffix in find_money(text)] == expected


def test_large_body_is_scanned_off_the_loop_with_the_same_result(make_message):
    filler = "We discussed the timetable and the room bookings for next term.\n" * 2000   # > 64K characters
    findings = scan(make_message(body=filler + "The fee is £1,250.\n" + filler))
    assert [(f.kind, f.count) for f in findings] == [("unworded_figure", 1)]



@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["£", "$", "US$", "€", "GBP", "EUR", "pounds", "1,250", "12.50", "0", "k", "m",
                                 " ", "(", ")", "one", "thousand", "and", "fifty", "pence", "-", ".", ",", "%"]),
                max_size=40))
def test_check_figures_never_fails(pieces):
    for kind, currency, shape in check_figures("".join(pieces)):
        assert kind in ("unworded_figure", "figure_mismatch") and currency in ("gbp", "usd", "eur")
        assert not any(ch.isdigit() for ch in shape)
