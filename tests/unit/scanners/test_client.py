"""DesktopClientScanner (clause 5.4): desktop mail clients named in X-Mailer / User-Agent."""

from __future__ import annotations

import asyncio

import pytest

from relay.envelope import Envelope
from relay.extract import extract
from relay.findings import TYPES, Confidence
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.client import DesktopClientScanner

ORG = Organisation("Example", ("example.ac.uk",))


def scan(raw: bytes, scanner=None):
    message = parse(raw)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", ("bob@partner.org",)), ORG, extract(message))
    return asyncio.run((scanner or DesktopClientScanner()).scan(ctx))


@pytest.mark.parametrize(("header", "value", "type_"), [
    ("X-Mailer", "Microsoft Outlook 16.0", "outlook"),
    ("X-Mailer", "Microsoft Office Outlook 12.0", "outlook"),
    ("User-Agent", "Microsoft-MacOutlook/16.78.23081600", "outlook"),
    ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0",
     "thunderbird"),
    ("X-Mailer", "Apple Mail (2.3774.200.91.1.1)", "apple_mail"),
    ("X-Mailer", "Evolution 3.46.4-2", "other"),
    ("X-Mailer", "Claws Mail 4.1.1 (GTK 3.24.38; x86_64-pc-linux-gnu)", "other"),
    ("User-Agent", "NeoMutt/20220429", "other"),
    ("User-Agent", "Mutt/2.2.12 (2023-09-09)", "other"),
    ("X-Mailer", "eM Client/9.2.2157.0", "other"),
    ("X-Mailer", "Microsoft Windows Live Mail 16.4.3528.331", "other"),
])
def test_desktop_clients(make_message, header, value, type_):
    findings = scan(make_message(headers={header: value}))
    assert [(f.kind, f.type, f.where, f.confidence) for f in findings] == [
        ("desktop_client", type_, f"header {header}", Confidence.HIGH)]
    assert not any(ch.isdigit() for ch in findings[0].evidence)   # product name, no version string


@pytest.mark.parametrize(("header", "value"), [
    ("X-Mailer", "Microsoft Outlook Web App"),
    ("X-Mailer", "Outlook Web Access"),
    ("User-Agent", "Roundcube Webmail/1.6.5"),
    ("User-Agent", "SOGoMail 5.9.1"),
    ("User-Agent", "Internet Messaging Program (IMP) H5 (6.2.27)"),
    ("X-Mailer", "Zimbra 8.8.15_GA_4508 (ZimbraWebClient - FF119 (Linux)/8.8.15_GA_4508)"),
    ("X-Mailer", "PHPMailer 6.8.1 (https://github.com/PHPMailer/PHPMailer)"),
    ("X-Mailer", "Python smtplib"),
    ("User-Agent", "SquirrelMail/1.4.23"),
])
def test_web_clients_and_unknown_agents_are_not_reported(make_message, header, value):
    assert scan(make_message(headers={header: value})) == []


def test_gmail_in_a_browser_has_no_x_mailer(make_message):
    assert scan(make_message()) == []


@pytest.mark.parametrize("value", ["iPhone Mail (21B101)", "Outlook-iOS/723.4027091.prod.iphone (4.2341.0)",
                                   "Outlook-Android/2.0", "K-9 Mail for Android"])
def test_mobile_clients_only_on_request(make_message, value):
    raw = make_message(headers={"X-Mailer": value})
    assert scan(raw) == []
    findings = scan(raw, DesktopClientScanner(report_mobile=True))
    assert [(f.type, f.confidence) for f in findings] == [("mobile", Confidence.MEDIUM)]


def test_types_are_registered():
    assert {"outlook", "thunderbird", "apple_mail", "other", "mobile"} == set(TYPES["desktop_client"])
