"""RecipientsScanner (clause 3.5): distribution lists and external addresses visible in To/Cc."""

from __future__ import annotations

import asyncio

from relay.envelope import Envelope
from relay.extract import extract
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.recipients import RecipientsScanner, header_addresses

ORG = Organisation("Example", ("example.ac.uk",), {}, ("all-staff@example.ac.uk", "everyone@example.ac.uk"))


def scan(raw: bytes, rcpts: tuple[str, ...], scanner=None):
    message = parse(raw)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", rcpts), ORG, extract(message))
    return asyncio.run((scanner or RecipientsScanner()).scan(ctx))


def by_kind(findings, kind):
    return [f for f in findings if f.kind == kind]


def test_many_external_addresses_in_to_and_cc_are_counted(make_message):
    to = ", ".join(f"person{i}@partner{i % 3}.org" for i in range(12))
    raw = make_message(to=to, headers={"Cc": "a@other.com, b@example.ac.uk"})
    findings = by_kind(scan(raw, ("person0@partner0.org",)), "visible_recipients")
    assert len(findings) == 1
    assert findings[0].count == 13          # 12 in To, a@other.com in Cc; the internal one never counts
    assert "@" not in findings[0].evidence  # no address in the log
    assert findings[0].evidence == "13 external addresses, 4 domains"


def test_internal_addresses_never_count(make_message):
    to = ", ".join(f"staff{i}@example.ac.uk" for i in range(20)) + ", x@dept.example.ac.uk"
    assert by_kind(scan(make_message(to=to), ("staff1@example.ac.uk",)), "visible_recipients") == []


def test_bcc_recipients_do_not_count(make_message):
    raw = make_message(to="one@partner.org")
    rcpts = ("one@partner.org",) + tuple(f"hidden{i}@elsewhere.org" for i in range(30))
    assert by_kind(scan(raw, rcpts), "visible_recipients") == []


def test_one_visible_address_is_not_reported_but_threshold_is_a_setting(make_message):
    raw = make_message(to="one@partner.org")
    assert by_kind(scan(raw, ("one@partner.org",)), "visible_recipients") == []
    found = by_kind(scan(raw, ("one@partner.org",), RecipientsScanner(min_count=1)), "visible_recipients")
    assert found and found[0].count == 1


def test_duplicates_and_case_count_once(make_message):
    raw = make_message(to="A@Partner.org, a@partner.org", headers={"Cc": "<a@PARTNER.ORG>, b@partner.org"})
    assert by_kind(scan(raw, ("a@partner.org",)), "visible_recipients")[0].count == 2


def test_encoded_display_names_with_commas_and_groups():
    raw = (b"From: alice@example.ac.uk\r\n"
           b"To: =?utf-8?q?Smith=2C_John?= <john@partner.org>, \"Doe, Jane\" <jane@partner.org>\r\n"
           b"Cc: Team: x@a.org, y@b.org;, undisclosed-recipients:;\r\n"
           b"Subject: hi\r\n\r\nbody\r\n")
    assert by_kind(scan(raw, ("john@partner.org",)), "visible_recipients")[0].count == 4


def test_header_addresses_ignores_names_and_garbage():
    # a quoted display name that looks like an address is a name, not a recipient
    assert header_addresses(["Smith, John <j@x.org>", "not an address", "\"a@b.c\" <r@y.org>"]) == [
        "j@x.org", "r@y.org"]


def test_distribution_list_in_envelope(make_message):
    raw = make_message(to="colleague@example.ac.uk")
    findings = by_kind(scan(raw, ("colleague@example.ac.uk", "All-Staff@example.ac.uk")), "distribution_list")
    assert [(f.where, f.evidence) for f in findings] == [("envelope", "all-staff@example.ac.uk")]


def test_distribution_list_in_headers_only(make_message):
    raw = make_message(to="Everyone <everyone@example.ac.uk>")
    findings = by_kind(scan(raw, ("someone@example.ac.uk",)), "distribution_list")
    assert [(f.where, f.evidence) for f in findings] == [("header To/Cc", "everyone@example.ac.uk")]


def test_ordinary_recipient_is_no_list(make_message):
    raw = make_message(to="all-staff-news@partner.org")
    assert by_kind(scan(raw, ("all-staff-news@partner.org",)), "distribution_list") == []


def test_folded_header_lines():
    raw = (b"From: alice@example.ac.uk\r\nTo: One <one@p.org>,\r\n Two <two@p.org>,\r\n\tthree@q.org\r\n"
           b"Subject: x\r\n\r\nhi\r\n")
    assert by_kind(scan(raw, ("one@p.org",)), "visible_recipients")[0].count == 3


def test_comments_and_unterminated_quotes():
    assert header_addresses(["r@y.org (old address x@z.org)"]) == ["r@y.org"]
    # an unterminated quote hides nothing: its addresses still count
    assert header_addresses(['"Smith <a@x.org>, b@y.org']) == ["a@x.org", "b@y.org"]


def test_big_address_lists():
    value = ", ".join(f'"Person {i}, Dept" <p{i}@firm{i % 50}.com>' for i in range(2000))
    assert len(header_addresses([value])) == 2000
