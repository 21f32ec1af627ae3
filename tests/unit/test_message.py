"""relay.message: one parse into a read-only tree; every oddity and bound is a finding."""

from __future__ import annotations

import base64
import dataclasses
import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.message import ParseLimits, Part, parse
from tests.data.attachments import samples


def kinds(msg) -> set[tuple[str, str]]:
    return {(f.kind, f.type) for f in msg.problems}


def by_name(msg, name: str) -> Part:
    return next(p for p in msg.walk() if p.filename == name)


def test_plain_message_has_no_problems_and_one_leaf(make_message):
    msg = parse(make_message(body="Hi Bob,\n\nlunch?\n"))
    assert msg.problems == ()
    leaves = list(msg.leaves())
    assert len(leaves) == 1 and leaves[0].content_type == "text/plain"
    assert b"lunch?" in leaves[0].payload
    assert msg.subject == "Hello"
    assert list(msg.attachments()) == []


def test_parts_are_read_only():
    msg = parse(samples.message([("a.txt", b"x", "text/plain")]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.root.payload = b"changed"  # type: ignore[misc]


def test_filenames_rfc2231_and_encoded_words_are_decoded():
    raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF-1.4\r\n"
           b"--B\r\nContent-Type: application/pdf; name=\"=?utf-8?B?0L/RgNC40LLQtdGCLnBkZg==?=\"\r\n\r\n%PDF-1.4\r\n"
           b"--B--\r\n")
    names = [p.filename for p in parse(raw).leaves()]
    assert names == ["résumé.pdf", "привет.pdf"]


def test_attached_message_parts_become_children():
    inner = samples.message([("inner.txt", b"inside", "text/plain")], subject="inner")
    raw = samples.message([("fwd.eml", inner, "message/rfc822")])
    msg = parse(raw)
    rfc822 = next(p for p in msg.walk() if p.content_type == "message/rfc822")
    assert rfc822.children and rfc822.payload == b""
    assert by_name(msg, "inner.txt").payload == b"inside"
    assert rfc822 not in list(msg.leaves())


def test_base64_message_rfc822_is_decoded_parsed_and_reported():
    inner = samples.message([("e.com", samples.EICAR, "application/octet-stream")])
    msg = parse(samples.forwarded_base64(inner))
    assert by_name(msg, "e.com").payload == samples.EICAR
    assert ("malformed", "encoded_message_rfc822") in kinds(msg)


def test_zip_members_are_children_with_origin_archive_and_labels():
    data = samples.zip_of({"readme.txt": b"hello", "tool.exe": samples.testfile("clam.exe")})
    msg = parse(samples.message([("docs.zip", data, "application/zip")]))
    archive = by_name(msg, "docs.zip")
    assert archive.archive == "zip" and archive.payload == data
    members = {p.filename: p for p in archive.children}
    assert set(members) == {"readme.txt", "tool.exe"}
    assert all(p.origin == "archive" for p in members.values())
    assert members["tool.exe"].payload == samples.testfile("clam.exe")
    assert members["tool.exe"].label == 'part 1.2 "docs.zip" > "tool.exe"'
    leaves = {p.label for p in msg.leaves()}
    assert 'part 1.2 "docs.zip"' in leaves and 'part 1.2 "docs.zip" > "readme.txt"' in leaves


def test_nested_zip_7z_targz_gzip_and_tnef_members():
    inner = samples.zip_of({"deep.exe": b"MZ inner"})
    raw = samples.message([
        ("outer.zip", samples.zip_of({"inner.zip": inner}), "application/zip"),
        ("a.7z", samples.sevenzip_of({"s.txt": b"seven"}), "application/x-7z-compressed"),
        ("a.tar.gz", samples.tar_gz_of({"t.txt": b"tar"}), "application/gzip"),
        ("log.txt.gz", gzip.compress(b"gz body"), "application/gzip"),
        ("winmail.dat", samples.testfile("clam.tnef"), "application/ms-tnef"),
    ])
    msg = parse(raw)
    assert msg.problems == ()
    assert by_name(msg, "deep.exe").label == 'part 1.2 "outer.zip" > "inner.zip" > "deep.exe"'
    assert by_name(msg, "s.txt").payload == b"seven"
    assert by_name(msg, "t.txt").payload == b"tar"
    assert by_name(msg, "log.txt").payload == b"gz body"
    assert by_name(msg, "clam.exe").payload == samples.testfile("clam.exe")
    assert by_name(msg, "winmail.dat").archive == "tnef"


def test_office_documents_are_not_expanded_as_archives():
    msg = parse(samples.message([("a.docx", samples.docx(), "application/octet-stream")]))
    doc = by_name(msg, "a.docx")
    assert doc.children == () and doc.archive == ""


def test_five_hundred_parts_parse_and_a_lower_bound_is_reported():
    assert parse(samples.many_parts(500)).problems == ()
    assert sum(1 for _ in parse(samples.many_parts(500)).leaves()) == 500
    capped = parse(samples.many_parts(500), ParseLimits(max_parts=100))
    assert ("limit_exceeded", "max_parts") in kinds(capped)
    assert sum(1 for _ in capped.walk()) <= 100


def test_sixty_deep_nesting_is_cut_at_max_depth():
    msg = parse(samples.nested(60), ParseLimits(max_depth=30))
    assert ("limit_exceeded", "max_mime_depth") in kinds(msg)
    deepest = max(p.index.count(".") for p in msg.walk())
    assert deepest <= 30


def test_broken_base64_is_reported():
    raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nTWFu!!!ZGF0YQ=\r\n")
    assert ("malformed", "bad_base64") in kinds(parse(raw))


def test_missing_boundaries_are_reported():
    no_close = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
                b"--B\r\nContent-Type: text/plain\r\n\r\nno closing boundary\r\n")
    no_start = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
                b"there is no boundary line at all\r\n")
    no_param = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n")
    for raw in (no_close, no_start, no_param):
        assert ("malformed", "broken_boundary") in kinds(parse(raw)), raw


def test_duplicate_from_and_content_type_and_nul_in_headers():
    raw = (b"From: a@example.org\r\nFrom: ceo@example.org\r\nSubject: pay\x00now\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain\r\nContent-Type: application/x-msdownload\r\n\r\nbody\r\n")
    msg = parse(raw)
    dups = [f for f in msg.problems if f.type == "duplicate_header"]
    assert dups and dups[0].count == 2
    assert ("malformed", "nul_in_header") in kinds(msg)
    assert "\x00" not in msg.subject


def test_zip_bomb_by_declared_ratio_and_by_size():
    bomb = samples.zip_of({"zeros.bin": b"\0" * (20 * 1024 * 1024)})
    msg = parse(samples.message([("bomb.zip", bomb, "application/zip")]))
    assert ("limit_exceeded", "max_compression_ratio") in kinds(msg)
    assert by_name(msg, "zeros.bin").payload == b""
    big = samples.zip_of({"big.bin": bytes(range(256)) * 8192})  # 2 MiB, compresses well below the ratio
    small_budget = ParseLimits(max_decoded_bytes=1024 * 1024, max_compression_ratio=10_000)
    assert ("limit_exceeded", "max_decoded_bytes") in kinds(
        parse(samples.message([("big.zip", big, "application/zip")]), small_budget))


def test_gzip_bomb_stops_while_decompressing():
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    msg = parse(samples.message([("zeros.gz", bomb, "application/gzip")]))
    assert ("limit_exceeded", "max_compression_ratio") in kinds(msg)


def test_archive_member_and_depth_bounds():
    many = samples.zip_of({f"f{i}.txt": b"x" for i in range(30)})
    msg = parse(samples.message([("many.zip", many, "application/zip")]), ParseLimits(max_archive_members=10))
    assert ("limit_exceeded", "max_archive_members") in kinds(msg)
    assert len(by_name(msg, "many.zip").children) == 10
    data = b"MZ"
    for level in range(5):
        data = samples.zip_of({f"level{level}.zip" if level else "x.exe": data})
    msg = parse(samples.message([("deep.zip", data, "application/zip")]), ParseLimits(max_archive_depth=3))
    assert ("limit_exceeded", "max_archive_depth") in kinds(msg)


def test_corrupt_archive_is_malformed_not_clean():
    data = samples.zip_of({"a.txt": b"hello" * 100})
    broken = data[:30] + b"\xff" * 40 + data[70:]
    msg = parse(samples.message([("a.zip", broken, "application/zip")]))
    assert any(f.kind == "malformed" for f in msg.problems)


def test_encrypted_members_are_flagged():
    msg = parse(samples.message([("s.zip", samples.encrypted_zip({"a.txt": b"secret"}), "application/zip"),
                                 ("s.7z", samples.sevenzip_of({"b.txt": b"x"}, "pw", True), "application/octet-stream")]))
    assert by_name(msg, "a.txt").encrypted
    assert by_name(msg, "s.7z").archive == "7z"
    assert all(p.encrypted for p in by_name(msg, "s.7z").children)


def test_decoded_bytes_bound_truncates_and_reports():
    msg = parse(samples.message([("a.bin", b"\1" * 5000, "application/octet-stream")]),
                ParseLimits(max_decoded_bytes=1000))
    assert ("limit_exceeded", "max_decoded_bytes") in kinds(msg)
    assert sum(len(p.payload) for p in msg.walk()) <= 1000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data):
    msg = parse(b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + data)
    assert msg.root is not None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=4, max_size=600))
def test_arbitrary_archive_bytes_never_raise(tail):
    for magic in (b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"\x1f\x8b", b"BZh9", b"\xfd7zXZ\x00", b"Rar!\x1a\x07\x00",
                  b"\x78\x9f\x3e\x22"):
        raw = samples.message([("a.bin", magic + tail, "application/octet-stream")])
        msg = parse(raw)
        assert by_name(msg, "a.bin").payload == magic + tail


def test_base64_attachment_round_trip_is_exact():
    data = bytes(range(256)) * 40
    raw = samples.message([("blob.bin", data, "application/octet-stream")])
    assert by_name(parse(raw), "blob.bin").payload == data
    assert base64.b64encode(data)[:20] in raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a.bin", "b.txt", "c.pdf", ""]), st.binary(max_size=3000),
                          st.sampled_from(["application/octet-stream", "text/plain", "image/png"])),
                max_size=6),
       st.text(max_size=500), st.booleans())
def test_leaves_agree_with_the_stdlib_on_well_formed_mail(attachments, body, lf_only):
    import email
    import email.policy

    from email.message import EmailMessage
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "s"
    msg.set_content(body)
    for name, data, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        if maintype == "text":
            msg.add_attachment(data.decode("latin-1"), subtype=subtype, filename=name or None)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name or None)
    raw = msg.as_bytes(policy=email.policy.SMTP)
    if lf_only:
        raw = raw.replace(b"\r\n", b"\n")
    ours = [(p.content_type, p.payload) for p in parse(raw).leaves()]
    theirs = [(p.get_content_type(), p.get_payload(decode=True) or b"")
              for p in email.message_from_bytes(raw, policy=email.policy.compat32).walk() if not p.is_multipart()]
    assert ours == theirs


def test_a_flood_of_delimiters_is_cut_at_max_parts_and_empty_boundaries_are_broken():
    flood = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * 500_000
    msg = parse(flood, ParseLimits(max_parts=50))
    assert ("limit_exceeded", "max_parts") in kinds(msg)
    assert sum(1 for _ in msg.walk()) <= 50
    empty = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\nx\r\n----\r\n"
    assert ("malformed", "broken_boundary") in kinds(parse(empty))


def test_raw_utf8_headers_read_as_text_without_surrogates():
    raw = ("From: a@example.org\r\nSubject: Grüße\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           "--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"résumé.pdf\"\r\n\r\n"
           "%PDF-1.4\r\n--B--\r\n").encode("utf-8")
    msg = parse(raw)
    assert msg.subject == "Grüße"
    assert [p.filename for p in msg.leaves()] == ["résumé.pdf"]
    msg.subject.encode("utf-8")  # no lone surrogates


def test_root_header_problems_say_header_not_part():
    raw = b"From: a@example.org\r\nFrom: b@example.org\r\n\r\nbody\r\n"
    (finding,) = parse(raw).problems
    assert finding.where == "header from"
