"""relay.scanners.protection: S/MIME, PGP, password-protected documents and archives."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.message import parse
from relay.scanners.protection import ProtectionScanner, scan_message
from tests.data.attachments import samples

HEAD = b"From: alice@example.ac.uk\r\nTo: bob@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
ENVELOPED_DER = bytes.fromhex("3082010006092a864886f70d010703a0") + b"\0" * 40
SIGNED_DER = bytes.fromhex("3082010006092a864886f70d010702a0") + b"\0" * 40


def facts(raw: bytes) -> set[tuple[str, str]]:
    return {(f.kind, f.type) for f in scan_message(parse(raw))}


def b64(data: bytes) -> bytes:
    import base64
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def test_smime_enveloped_and_signed_data():
    enveloped = HEAD + (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
                        b"Content-Transfer-Encoding: base64\r\n\r\n") + b64(ENVELOPED_DER)
    assert facts(enveloped) == {("encrypted_message", "smime")}
    signed_data = HEAD + (b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
                          b"Content-Transfer-Encoding: base64\r\n\r\n") + b64(SIGNED_DER)
    assert facts(signed_data) == {("signed_message", "smime")}
    no_param = HEAD + (b"Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\n") + b64(ENVELOPED_DER)
    assert facts(no_param) == {("encrypted_message", "smime")}


def test_smime_multipart_signed():
    raw = HEAD + (b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; "
                  b"boundary=S\r\n\r\n--S\r\nContent-Type: text/plain\r\n\r\nhello\r\n--S\r\n"
                  b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\n") + b64(SIGNED_DER) + b"--S--\r\n"
    assert facts(raw) == {("signed_message", "smime")}


def test_pgp_mime_encrypted_and_signed_and_inline():
    encrypted = HEAD + (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
                        b"--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--E\r\n"
                        b"Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n"
                        b"-----END PGP MESSAGE-----\r\n--E--\r\n")
    assert ("encrypted_message", "pgp") in facts(encrypted)
    signed = HEAD + (b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; "
                     b"boundary=P\r\n\r\n--P\r\nContent-Type: text/plain\r\n\r\nhello\r\n--P\r\n"
                     b"Content-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\niQ\r\n"
                     b"-----END PGP SIGNATURE-----\r\n--P--\r\n")
    assert facts(signed) == {("signed_message", "pgp")}
    inline = HEAD + b"Content-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n"
    assert facts(inline) == {("encrypted_message", "pgp")}
    clearsigned = HEAD + b"\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n"
    assert facts(clearsigned) == {("signed_message", "pgp")}


def test_plain_and_forwarded_protected_messages_are_not_this_message():
    assert facts(samples.message()) == set()
    inner = HEAD + b"Content-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n"
    assert facts(samples.message([("fwd.eml", inner, "message/rfc822")])) == set()


def test_office_encrypted_and_default_password():
    assert facts(samples.message([("s.docx", samples.encrypted_office("s3cret!"), "application/octet-stream")])) == {
        ("encrypted_content", "office")}
    assert facts(samples.message([("v.docx", samples.encrypted_office("VelvetSweatshop"), "application/octet-stream")])) == {
        ("weak_protection", "office_default_password")}
    assert facts(samples.message([("p.docx", samples.docx(), "application/octet-stream")])) == set()
    assert facts(samples.message([("old.doc", samples.testfile("clam.ole.doc"), "application/msword")])) == set()


def test_pdf_user_password_owner_password_and_none():
    assert facts(samples.message([("u.pdf", samples.pdf("user", "owner"), "application/pdf")])) == {
        ("encrypted_content", "pdf")}
    assert facts(samples.message([("o.pdf", samples.pdf("", "owner"), "application/pdf")])) == {
        ("weak_protection", "pdf_owner_password")}
    assert facts(samples.message([("n.pdf", samples.pdf(), "application/pdf")])) == set()


def test_encrypted_archive_members_one_finding_per_archive():
    raw = samples.message([
        ("a.zip", samples.encrypted_zip({"1.txt": b"a", "2.txt": b"b"}), "application/zip"),
        ("b.7z", samples.sevenzip_of({"x.txt": b"x"}, password="pw"), "application/x-7z-compressed"),
        ("c.7z", samples.sevenzip_of({"y.txt": b"y"}, password="pw", header_encryption=True), "application/octet-stream"),
        ("plain.zip", samples.zip_of({"p.txt": b"p"}), "application/zip"),
    ])
    findings = scan_message(parse(raw))
    got = sorted((f.kind, f.type, f.count, f.where) for f in findings)
    assert got == [
        ("encrypted_content", "7z", 1, 'part 1.3 "b.7z"'),
        ("encrypted_content", "7z", 1, 'part 1.4 "c.7z"'),
        ("encrypted_content", "zip", 2, 'part 1.2 "a.zip"'),
    ]


def test_encrypted_document_inside_a_zip_is_found():
    raw = samples.message([("docs.zip", samples.zip_of({"cv.pdf": samples.pdf("u", "o")}), "application/zip")])
    (finding,) = scan_message(parse(raw))
    assert (finding.kind, finding.type, finding.where) == ("encrypted_content", "pdf", 'part 1.2 "docs.zip" > "cv.pdf"')


def test_scanner_runs_off_the_loop():
    class Ctx:
        message = parse(samples.message([("u.pdf", samples.pdf("user", "owner"), "application/pdf")]))

    findings = asyncio.run(ProtectionScanner().scan(Ctx()))
    assert [f.kind for f in findings] == ["encrypted_content"]


def test_encrypted_rar_members():
    raw = samples.message([("x.rar", samples.rar4_of({"a.txt": b"x"}, encrypted=True), "application/x-rar")])
    assert [(f.kind, f.type) for f in scan_message(parse(raw))] == [("encrypted_content", "rar")]


def test_pgp_encrypted_attachments_are_encrypted_content_not_an_encrypted_message():
    armoured = b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n"
    raw = samples.message([("data.csv.asc", armoured, "application/pgp-encrypted"),
                           ("data.gpg", b"\x85\x01\x0c\x03" + b"\0" * 40, "application/octet-stream")])
    got = sorted((f.kind, f.type, f.where) for f in scan_message(parse(raw)))
    assert got == [("encrypted_content", "pgp", 'part 1.2 "data.csv.asc"'),
                   ("encrypted_content", "pgp", 'part 1.3 "data.gpg"')]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([b"", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"%PDF-1.4\n/Encrypt ", b"\x85\x01",
                        b"-----BEGIN PGP MESSAGE-----"]), st.binary(max_size=3000),
       st.sampled_from(["a.pdf", "a.docx", "a.gpg", "a.p7m"]))
def test_arbitrary_attachments_never_raise(prefix, tail, name):
    raw = samples.message([(name, prefix + tail, "application/octet-stream")])
    for finding in scan_message(parse(raw)):
        assert finding.kind in ("encrypted_content", "weak_protection", "encrypted_message", "signed_message")


PGP_BLOCK = b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n"


def test_a_body_that_mentions_pgp_armour_is_not_an_encrypted_message():
    raw = HEAD + (b"Content-Type: text/plain\r\n\r\nNI AB 12 34 56 C\r\n-- \r\n"
                  b"PGP users: -----BEGIN PGP MESSAGE----- blocks welcome\r\n")
    assert facts(raw) == set()
    plain_beside_armour = samples.message([("notes.txt", b"NI AB 12 34 56 C\r\n", "text/plain")],
                                          body=PGP_BLOCK.decode())
    assert ("encrypted_message", "pgp") not in facts(plain_beside_armour)


def test_an_attached_p7m_or_nested_pgp_mime_is_encrypted_content_not_the_message():
    raw = samples.message([("old.p7m", ENVELOPED_DER, "application/pkcs7-mime")])
    got = sorted((f.kind, f.type, f.where) for f in scan_message(parse(raw)))
    assert got == [("encrypted_content", "smime", 'part 1.2 "old.p7m"')]
    nested = HEAD + (b"Content-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                     b"--M\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n"
                     b"--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--E\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\n") + PGP_BLOCK + b"--E--\r\n--M--\r\n"
    assert facts(nested) == {("encrypted_content", "pgp")}


def test_signed_after_encrypting_is_an_encrypted_message():
    raw = HEAD + (b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=S\r\n\r\n"
                  b"--S\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\n") + b64(ENVELOPED_DER) + (
                  b"--S\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\n") + b64(SIGNED_DER) + b"--S--\r\n"
    assert facts(raw) == {("encrypted_message", "smime"), ("signed_message", "smime")}
