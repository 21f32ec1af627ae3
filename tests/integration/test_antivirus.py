"""ClamAV through the relay's antivirus scanner, against a real private clamd.

Also the attachment scanners together through ``Pipeline.decide`` under the
shipped policy: malware -> reject, clamd down/hung/garbled -> tempfail,
dangerous types and lies -> reject, macros -> hold, encrypted -> tag.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.clamd import Clamd
from relay.envelope import Envelope
from relay.message import parse
from relay.scanners.antivirus import AntivirusScanner
from tests.data.attachments import samples

pytestmark = pytest.mark.clamd

ROOT = Path(__file__).resolve().parents[2]


def scan(url, raw: bytes, timeout: float = 20.0, stream_max: int | None = None):
    scanner = AntivirusScanner(client=Clamd((url,) if isinstance(url, str) else url, timeout, 4, stream_max))
    return asyncio.run(scanner.scan_message(parse(raw)))


def malware(findings) -> list[tuple[str, str]]:
    return [(f.type.split(".")[0], f.where) for f in findings if f.kind == "malware"]


def test_clean_message_has_no_findings(clamd):
    assert scan(clamd, samples.message([("notes.txt", b"nothing to see", "text/plain")])) == []


def test_eicar_in_the_body_and_as_attachment(clamd):
    assert malware(scan(clamd, samples.message(body=samples.EICAR.decode()))) == [("Eicar-Test-Signature", "part 1")]
    raw = samples.message([("eicar.com", samples.EICAR, "application/octet-stream")])
    assert malware(scan(clamd, raw)) == [("Eicar-Test-Signature", 'part 1.2 "eicar.com"')]


def test_eicar_in_zip_and_nested_zip_names_the_member(clamd):
    inner = samples.zip_of({"eicar.com": samples.EICAR})
    raw = samples.message([("a.zip", inner, "application/zip"),
                           ("b.zip", samples.zip_of({"readme.txt": b"hi", "inner.zip": inner}), "application/zip")])
    assert sorted(malware(scan(clamd, raw))) == [
        ("Eicar-Test-Signature", 'part 1.2 "a.zip" > "eicar.com"'),
        ("Eicar-Test-Signature", 'part 1.3 "b.zip" > "inner.zip" > "eicar.com"'),
    ]


def test_base64_inside_message_rfc822(clamd):
    inner = samples.message([("eicar.com", samples.EICAR, "application/octet-stream")])
    assert malware(scan(clamd, samples.forwarded_base64(inner))) == [
        ("Eicar-Test-Signature", 'part 1.2.1.2 "eicar.com"')]


@pytest.mark.parametrize(("name", "where"), [
    ("clam.zip", 'part 1.2 "clam.zip" > "clam.exe"'),
    ("clam.7z", 'part 1.2 "clam.7z" > "clam.exe"'),
    ("clam.tar.gz", 'part 1.2 "clam.tar.gz" > "clam.exe"'),
    ("clam.tnef", 'part 1.2 "clam.tnef" > "clam.exe"'),
    ("clam.ole.doc", 'part 1.2 "clam.ole.doc"'),
    ("clam.cab", 'part 1.2 "clam.cab"'),
    ("clam.pdf", 'part 1.2 "clam.pdf"'),
    ("clam.exe.rtf", 'part 1.2 "clam.exe.rtf"'),
])
def test_clamav_testfiles(clamd, name, where):
    raw = samples.message([(name, samples.testfile(name), "application/octet-stream")])
    assert malware(scan(clamd, raw)) == [("ClamAV-Test-File", where)]


def test_a_hit_no_single_part_shows_is_reported_for_the_message(clamd):
    raw = samples.message([("notes.txt", b"hello", "text/plain")])
    raw = raw.replace(b"Subject: Files", b"Subject: " + samples.EICAR, 1)  # in a header: in no part
    assert malware(scan(clamd, raw)) == [("Eicar-Test-Signature", "message")]


def test_clamav_testfile_mail(clamd):
    findings = scan(clamd, samples.testfile("clam.mail"))
    assert [(f.kind, f.type) for f in findings] == [("malware", "ClamAV-Test-File.UNOFFICIAL")]


@pytest.mark.parametrize("fault", ["clamd_down", "clamd_hung", "clamd_garbage"])
def test_clamd_faults_are_scanner_unavailable_never_clean(request, fault):
    url = request.getfixturevalue(fault)
    findings = scan(url, samples.message([("eicar.com", samples.EICAR, "application/octet-stream")]), timeout=1.0)
    assert [(f.kind, f.type) for f in findings] == [("scanner_unavailable", "clamav")]


def test_failover_to_the_second_clamd(clamd, clamd_down):
    raw = samples.message([("eicar.com", samples.EICAR, "application/octet-stream")])
    assert malware(scan((clamd_down, clamd), raw)) == [("Eicar-Test-Signature", 'part 1.2 "eicar.com"')]


def test_over_streammaxlength_is_scanner_unavailable(clamd):
    big = samples.message([("big.bin", b"\1" * (26 * 1024 * 1024), "application/octet-stream")])
    (finding,) = scan(clamd, big, timeout=60)  # clamd's StreamMaxLength is 25M: clamd itself refuses
    assert (finding.kind, finding.type, finding.evidence) == ("scanner_unavailable", "clamav", "over StreamMaxLength")
    (refused,) = scan(clamd, big, stream_max=25 * 1024 * 1024)  # clamd_stream_max: refused before sending
    assert (refused.kind, refused.evidence) == ("scanner_unavailable", "over StreamMaxLength")


# ------------------------------------------------------------------ through the pipeline and shipped policy


def decide(settings, raw: bytes):
    from relay.pipeline import Pipeline
    from relay.policy.loader import load_policy
    from relay.scanners.filetypes import FileTypeScanner
    from relay.scanners.protection import ProtectionScanner

    policy = load_policy(ROOT / "policies" / "icmp-email-use.yaml")
    scanners = [AntivirusScanner(settings), FileTypeScanner(settings), ProtectionScanner(settings)]
    envelope = Envelope("alice@example.ac.uk", ("bob@example.org",), "127.0.0.1")
    decision = asyncio.run(Pipeline(settings, policy, scanners).decide(envelope, raw))
    return str(decision.verdict.action), {m.rule_id for m in decision.verdict.enforced}


@pytest.mark.parametrize(("attachment", "action"), [
    (("eicar.com", samples.EICAR, "application/octet-stream"), "reject"),
    (("invoice.pdf", samples.testfile("clam.exe"), "application/pdf"), "reject"),
    (("run.js", b"var a = 1;", "application/javascript"), "reject"),
    (("book.xlsm", samples.macro_xlsm(), "application/octet-stream"), "hold"),
    (("notes.txt", b"see you at ten", "text/plain"), "accept"),
    (("secret.docx", samples.encrypted_office("s3cret"), "application/octet-stream"), "tag"),
    (("secret.pdf", samples.pdf("user", "owner"), "application/pdf"), "tag"),
    (("secret.zip", samples.zipcrypto(), "application/zip"), "tag"),
    (("bomb.zip", samples.zip_of({"z.bin": b"\0" * (20 * 1024 * 1024)}), "application/zip"), "hold"),
    (("disk.iso", samples.iso(), "application/octet-stream"), "reject"),
    (("invite.docx", samples.dde_docx(), "application/octet-stream"), "hold"),
])
def test_shipped_policy_on_attachments(clamd, make_settings, attachment, action):
    settings = make_settings(clamd=clamd, clamd_timeout="10s")
    got, _ = decide(settings, samples.message([attachment]))
    assert got == action


@pytest.mark.parametrize("fault", ["clamd_down", "clamd_hung", "clamd_garbage"])
def test_shipped_policy_tempfails_when_clamd_fails(request, make_settings, fault):
    settings = make_settings(clamd=request.getfixturevalue(fault), clamd_timeout="1s")
    got, rules = decide(settings, samples.message([("notes.txt", b"see you at ten", "text/plain")]))
    assert got == "tempfail"


def test_eicar_in_rar(clamd):
    raw = samples.message([("x.rar", samples.rar4_of({"eicar.com": samples.EICAR}), "application/x-rar")])
    assert malware(scan(clamd, raw)) == [("Eicar-Test-Signature", 'part 1.2 "x.rar" > "eicar.com"')]


def test_start_clamd_script_unix_socket_test_signatures_and_idempotence(tmp_path):
    import os
    import subprocess

    from relay import clamd as client
    from tests.fixtures.clamd import stop_pid

    directory = tmp_path / "clamd"
    bin_dir, calls = tmp_path / "bin", tmp_path / "freshclam-calls"
    bin_dir.mkdir()
    fake = bin_dir / "freshclam"   # freshclam that cannot reach the mirrors (offline): records the try, fails
    fake.write_text(f'#!/bin/sh\necho try >>"{calls}"\nexit 1\n')
    fake.chmod(0o755)

    def start(offline_freshclam: bool = False):
        env = {**os.environ, "CLAMD_NO_FRESHCLAM": "1"}
        if offline_freshclam:
            env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
            env.pop("CLAMD_NO_FRESHCLAM", None)
        return subprocess.run(["bash", str(ROOT / "scripts" / "start-clamd.sh"), str(directory)],
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, env=env)

    def tries() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    first = start()
    pid = int((directory / "clamd.pid").read_text())
    try:
        assert first.returncode == 0, first.stderr
        url = first.stdout.strip()
        assert url == f"unix://{directory}/clamd.sock"
        assert "ONLY TEST SIGNATURES" in first.stderr and "CLAMD_NO_FRESHCLAM" in first.stderr
        assert tries() == 0
        assert "StreamMaxLength 25M" in (directory / "clamd.conf").read_text()
        again = start(offline_freshclam=True)     # running already: same clamd, freshclam tried again, warned again
        assert (again.returncode, again.stdout.strip()) == (0, url)
        assert int((directory / "clamd.pid").read_text()) == pid
        assert tries() == 1
        assert "ONLY TEST SIGNATURES" in again.stderr and "could not fetch" in again.stderr
        assert asyncio.run(client.ping(url))
        assert asyncio.run(client.scan_bytes(samples.EICAR, url)).signature.startswith("Eicar-Test-Signature")
        exe = asyncio.run(client.scan_bytes(samples.testfile("clam.7z"), url))
        assert exe.signature.startswith("ClamAV-Test-File")
    finally:
        stop_pid(pid)
    # the same clamd, stopped: never clean
    findings = scan(url, samples.message([("eicar.com", samples.EICAR, "application/octet-stream")]), timeout=2)
    assert [(f.kind, f.type) for f in findings] == [("scanner_unavailable", "clamav")]

    # a later start over the test signatures it wrote: freshclam tried again, the warning again
    later = start(offline_freshclam=True)
    pid = int((directory / "clamd.pid").read_text())
    try:
        assert later.returncode == 0, later.stderr
        assert later.stdout.strip() == url
        assert tries() == 2
        assert "ONLY TEST SIGNATURES" in later.stderr and "could not fetch" in later.stderr
        assert asyncio.run(client.scan_bytes(samples.EICAR, url)).signature.startswith("Eicar-Test-Signature")
    finally:
        stop_pid(pid)


@pytest.mark.parametrize("raw", [
    samples.nested(60),
    samples.many_parts(1200),
    b"From: a@example.ac.uk\r\nTo: b@example.org\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nTWFu!!!ZGF0YQ=\r\n",
    b"From: a@example.ac.uk\r\nTo: b@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n"
    b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nno close delimiter\r\n",
], ids=["60-deep", "1200-parts", "bad-base64", "no-close-boundary"])
def test_shipped_policy_holds_what_the_parser_cannot_fully_read(clamd, make_settings, raw):
    got, rules = decide(make_settings(clamd=clamd, clamd_timeout="10s"), raw)
    assert (got, "malformed-message" in rules) == ("hold", True)


def test_clamav_scan_limits_are_limit_exceeded_not_clean(tmp_path):
    import os
    import subprocess

    from tests.fixtures.clamd import stop_pid, write_signatures

    write_signatures(tmp_path / "db")
    started = subprocess.run(["bash", str(ROOT / "scripts" / "start-clamd.sh"), str(tmp_path), "--tcp"],
                             capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                             env={**os.environ, "CLAMD_NO_FRESHCLAM": "1", "CLAMD_EXTRA_CONFIG": "MaxFileSize 1M"})
    pid = int((tmp_path / "clamd.pid").read_text())
    try:
        assert started.returncode == 0, started.stderr
        big = b"\0" * (2 * 1024 * 1024)  # over this clamd's MaxFileSize
        findings = scan(started.stdout.strip(), samples.message([("big.bin", big, "application/octet-stream")]))
        assert [(f.kind, f.type) for f in findings] == [("limit_exceeded", "clamav:MaxFileSize")]
    finally:
        stop_pid(pid)


# ------------------------------------------------------------------ end to end: `relay serve` under the shipped policy


def _send(port: int, raw: bytes) -> tuple[int, str]:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        try:
            smtp.sendmail("alice@example.ac.uk", ["bob@example.org"], raw)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        return 250, ""


def test_relay_serve_rejects_malware_naming_signature_and_file_and_forwards_clean(start_relay, make_sink, clamd):
    policy = (ROOT / "policies" / "icmp-email-use.yaml").read_text(encoding="utf-8")
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_CLAMD": clamd}, policy=policy)
    code, text = _send(relay.port, samples.message([("docs.zip", samples.zip_of({"eicar.com": samples.EICAR}),
                                                     "application/zip")]))
    assert (code, "rule malware" in text) == (550, True), text
    assert "Eicar-Test-Signature" in text and "eicar.com" in text, text
    assert sink.messages == []
    assert _send(relay.port, samples.message([("notes.txt", b"see you at ten", "text/plain")]))[0] == 250
    assert len(sink.wait_for_messages(1)) == 1
    rejected = relay.wait_for_event("decision", 2)[0]
    assert {(f["kind"], f["where"]) for f in rejected["findings"]} >= {
        ("malware", 'part 1.2 "docs.zip" > "eicar.com"')}


@pytest.mark.parametrize("fault", ["clamd_down", "clamd_hung", "clamd_garbage"])
def test_relay_serve_tempfails_and_forwards_nothing_when_clamd_fails(request, start_relay, make_sink, fault):
    policy = (ROOT / "policies" / "icmp-email-use.yaml").read_text(encoding="utf-8")
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_CLAMD": request.getfixturevalue(fault),
                         "RELAY_CLAMD_TIMEOUT": "1s"}, policy=policy)
    code, text = _send(relay.port, samples.message([("notes.txt", b"see you at ten", "text/plain")]))
    assert code == 451, text
    (event,) = relay.wait_for_event("decision", 1)
    assert ("scanner_unavailable", "clamav") in {(f["kind"], f.get("type")) for f in event["findings"]}
    assert sink.messages == []  # nothing passed unscanned
