from relay.findings import Confidence
from relay.scanners.personal_data.contacts import signature_zones

from pd_helpers import find, types

SIG = "\n\nKind regards,\nAlice Example\nTel: 0161 496 0000\n12 High Street\nLeeds LS1 4AP\n"


def people(n, fmt):
    first = ["Amy", "Ben", "Cara", "Dan", "Eve", "Finn", "Gail", "Hugo", "Ida", "Jon", "Kay", "Liam"]
    return "\n".join(fmt(i, first[i]) for i in range(n))


def test_bulk_emails_phones_addresses():
    text = "List:\n" + people(8, lambda i, f: f"{f} Smith, {f.lower()}.smith@gmail.com, 0113 496 0{100 + i}, "
                                            f"{10 + i} Station Road, Leeds LS{i + 1} 4AP")
    t = types(text)
    assert t["bulk_contacts:email_address"] == Confidence.HIGH
    assert t["bulk_contacts:phone_number"] == Confidence.HIGH
    assert t["bulk_contacts:postal_address"] == Confidence.HIGH
    counts = {f.type: f.count for f in find(text) if f.kind == "bulk_contacts"}
    assert counts == {"email_address": 8, "phone_number": 8, "postal_address": 8}


def test_duplicates_counted_once():
    text = "\n".join(f"Contact: sam{i % 3}@example.org" for i in range(12))
    assert "bulk_contacts:email_address" not in types(text)


def test_few_contacts_are_not_bulk():
    text = "Copying amy@gmail.com, ben@gmail.com and cara@gmail.com. Call 0113 496 0123."
    t = types(text)
    assert not any(k.startswith("bulk_contacts") for k in t)
    assert t.get("personal_data:phone_number") == Confidence.LOW
    assert "personal_data:email_address" not in t


def test_signature_phone_and_address_ignored():
    assert types("Thanks for the call." + SIG) == {}


def test_sender_signature_number_elsewhere_ignored():
    assert types("Ring me on 0161 496 0000 later." + SIG) == {}


def test_prose_scattered_addresses_are_low_until_many():
    text = " ".join(f"write to p{i}@gmail.com" for i in range(6))
    assert types(text)["bulk_contacts:email_address"] == Confidence.LOW
    text = " ".join(f"write to p{i}@gmail.com" for i in range(10))
    assert types(text)["bulk_contacts:email_address"] == Confidence.MEDIUM


def test_quoted_headers_and_excluded_addresses_do_not_count():
    text = "\n".join(f"From: p{i}@gmail.com" for i in range(8))
    assert "bulk_contacts:email_address" not in types(text)
    listed = "\n".join(f"p{i}@gmail.com" for i in range(5))
    assert "bulk_contacts:email_address" not in types(listed, exclude=["p0@gmail.com"])


def test_single_address_is_low_and_signature_zone_shape():
    t = types("The venue is 12 High Street, Leeds LS1 4AP - parking at the rear.")
    assert t == {"personal_data:postal_address": Confidence.LOW}
    zones = signature_zones("a\nThanks for the quick reply.\nb\nBest wishes,\nAlice\n")
    assert len(zones) == 1


def test_invalid_phone_numbers_ignored():
    text = "\n".join(f"n{i}: 0999 000 0{i:03d}" for i in range(8))
    assert "bulk_contacts:phone_number" not in types(text)


def test_evidence_has_no_addresses():
    text = "\n".join(f"person{i}@gmail.com" for i in range(6))
    (f,) = find(text)
    assert f.evidence == "6 distinct email addresses" and "@" not in f.evidence


def test_role_mailboxes_are_not_people():
    text = "\n".join(f"{r}@example.ac.uk" for r in ("info", "finance", "hr", "helpdesk", "library", "estates"))
    assert "bulk_contacts:email_address" not in types(text)


def test_addresses_scattered_over_paragraphs_are_not_a_list():
    paras = [f"Paragraph {i} of prose.\nMore prose here.\nPlease copy p{i}@gmail.com on it.\nEnd." for i in range(6)]
    assert types("\n\n".join(paras))["bulk_contacts:email_address"] == Confidence.LOW


def test_phone_shortcut_agrees_with_phonenumbers_parse():
    """phone_value skips phonenumbers.parse for the shapes the scan finds; same answer as parse()."""
    import random

    from relay.scanners.personal_data.contacts import _parsed_value, phone_value

    r = random.Random(6)
    samples = ["0161 496 0000", "(0161) 496 0000", "+44 (0)161 496 0000", "+44 161 496 0000", "0044 161 496 0000",
               "07700 900123", "+447700900123", "020 7946 0991", "0800 123 4567", "00 1 212 555 0100",
               "+44 (0) 0161 496 0000", "+33 1 23 45 67 89", "0300 123 1234", "01632 960 001", "0161-496-0000"]
    for _ in range(20000):
        prefix = r.choice(["0", "0", "+44 ", "+44 (0)", "0044 ", "(0", "00", "+4", "+440", ""])
        body = "".join(r.choice("0123456789") for _ in range(r.randint(8, 12)))
        text = "".join(ch + (r.choice(" -") if r.random() < 0.15 else "") for ch in prefix + body).strip(" -")
        samples.append(text)
    valid = 0
    for raw in samples:
        assert phone_value.__wrapped__(raw) == _parsed_value(raw), raw
        valid += bool(_parsed_value(raw))
    assert valid > 500                      # the sample reaches valid numbers, not only rejections


def test_quote_start_first_characters_cover_the_pattern():
    """signature_zones skips the quoted-message regex for lines whose first character it cannot start with."""
    import re
    import sys

    from relay.scanners.personal_data.contacts import _QUOTE_FIRST, _QUOTE_START

    starts = re.compile(r"[-fstco>]", re.I)          # the first characters of _QUOTE_START's alternatives
    assert {chr(i) for i in range(sys.maxunicode + 1) if starts.match(chr(i))} <= _QUOTE_FIRST
    for line in ("-----Original Message-----", "From: a", "sent: b", "To: c", "Cc: d", "Subject: e",
                 "On Monday, Jo wrote:", "> quoted", "\u017fent: long s"):
        assert _QUOTE_START.match(line) and starts.match(line[0]), line
