"""extract() over whole messages: bodies, headers, attachments, nesting, bounds."""

import io
import zipfile
from email.message import EmailMessage

from relay.config import Settings
from relay.extract import ExtractLimits, Extraction, TextChunk, extract
from relay.message import ParsedMessage, Part, parse
from tests.data.documents import generate as g


def where_text(result: Extraction) -> list[tuple[str, str, str]]:
    return [(c.where, c.source, c.kind) for c in result.chunks]


def test_plain_body_and_subject(make_message):
    result = extract(parse(make_message(body="Hello Ann,\nNHS 943 476 5919\n", subject="Results")))
    assert where_text(result) == [("header Subject", "header", "text"), ("body", "body", "text")]
    assert result.chunks[0].text == "Results"
    assert result.body_text() == "Hello Ann,\nNHS 943 476 5919\n"
    assert result.problems == ()


def test_alternative_bodies_both_kept_hidden_html_included():
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content("Plain version")
    msg.add_alternative('<p>HTML version</p><div style="display:none">hidden DOB 01/02/1980</div>', subtype="html")
    result = extract(parse(msg.as_bytes()))
    bodies = [c for c in result.chunks if c.source == "body"]
    assert [c.kind for c in bodies] == ["text", "html"]
    assert "hidden DOB 01/02/1980" in result.body_text() and "Plain version" in result.body_text()


def test_body_charsets_windows_1252_and_utf16():
    root = Part("1", "multipart/mixed", children=(
        Part("1.1", "text/plain", charset="utf-8", payload="Café £5".encode("cp1252")),
        Part("1.2", "text/html", payload=b'<meta charset="windows-1252"><p>\x80 10</p>'),
        Part("1.3", "text/plain", filename="notes.txt", disposition="attachment",
             payload="NI QQ123456C".encode("utf-16")),  # with its BOM
    ))
    result = extract(ParsedMessage(b"", root))
    assert [c.text for c in result.chunks] == ["Café £5", "€ 10", "NI QQ123456C"]


def test_attachments_by_type(make_message):
    raw = make_message(attachments=[
        ("cv.docx", g.docx(["Curriculum vitae"]), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("list.csv", b"Name,DOB\nAnn,01/02/1980\n", "text/csv"),
        ("page.html", b"<p>Attached &amp; page</p>", "text/html"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png"),
    ])
    result = extract(parse(raw))
    got = {c.where: (c.kind, c.text) for c in result.chunks if c.source == "attachment"}
    assert got == {
        'part 1.2 "cv.docx"': ("docx", "Curriculum vitae"),
        'part 1.3 "list.csv"': ("csv", "Name | DOB\nName: Ann | DOB: 01/02/1980"),
        'part 1.4 "page.html"': ("html", "Attached & page"),
    }
    assert result.problems == ()


def test_nested_message_text_and_subject_are_attachment_text(make_message):
    inner = make_message(body="Forwarded NI QQ123456C\n", subject="Inner subject",
                         attachments=[("inner.docx", g.docx(["Inner document"]), "application/octet-stream")])
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("See below")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")
    result = extract(parse(outer.as_bytes()))
    texts = {c.text.strip(): c.source for c in result.chunks}
    assert texts["See below"] == "body"
    assert texts["Forwarded NI QQ123456C"] == "attachment"
    assert texts["Inner subject"] == "attachment"
    assert texts["Inner document"] == "attachment"


def test_zip_members_are_extracted(make_message):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/letter.docx", g.docx(["Zipped letter"]))
        zf.writestr("notes.txt", "Zipped notes")
        zf.writestr("list.xlsx", g.xlsx({"S": [["NI number"], ["QQ123456C"]]}))
    result = extract(parse(make_message(attachments=[("docs.zip", buf.getvalue(), "application/zip")])))
    members = {c.kind: c for c in result.chunks if c.source == "attachment"}
    assert members["docx"].text == "Zipped letter" and "docs.zip" in members["docx"].where
    assert members["text"].text == "Zipped notes"
    assert "NI number: QQ123456C" in members["xlsx"].text
    assert result.problems == ()


def test_docx_listed_with_members_is_read_as_one_document():
    data = g.docx(["One document"])
    member = Part("1.2/1", "application/xml", "word/document.xml", payload=b"<w:document/>", origin="archive")
    root = Part("1", "multipart/mixed", children=(
        Part("1.2", "application/octet-stream", "a.docx", payload=data, children=(member,)),))
    result = extract(ParsedMessage(b"", root))
    assert [(c.where, c.text) for c in result.chunks] == [('part 1.2 "a.docx"', "One document")]


def test_byte_bound_truncates_and_stops(make_message):
    raw = make_message(body="é" * 3000, attachments=[("b.txt", b"more text", "text/plain")])
    result = extract(parse(raw), ExtractLimits(max_bytes=1001))
    assert [(p.kind, p.type, p.where) for p in result.problems] == [("limit_exceeded", "max_extract_bytes", "body")]
    assert sum(len(c.text.encode()) for c in result.chunks) <= 1001
    assert result.chunks[-1].where == "body" and result.chunks[-1].text.startswith("éé")


def test_deadline_between_documents(make_message):
    raw = make_message(attachments=[("a.txt", b"x", "text/plain")])
    result = extract(parse(raw), ExtractLimits(timeout=-1))
    assert [(p.kind, p.type) for p in result.problems] == [("limit_exceeded", "extract_timeout")]


def test_extraction_failed_names_the_document_and_goes_on(make_message):
    raw = make_message(attachments=[("cv.docx", b"PK\x03\x04garbage", "application/octet-stream"),
                                    ("ok.txt", b"still read", "text/plain")])
    result = extract(parse(raw))
    assert [(p.kind, p.type, p.where, p.evidence) for p in result.problems] == [
        ("extraction_failed", "docx", 'part 1.2 "cv.docx"', "BadZipFile")]
    assert result.chunks[-1].text == "still read"


def test_limits_from_settings():
    settings = Settings.from_mapping({"max_extract_bytes": "1MiB", "extract_timeout": "5s"})
    limits = ExtractLimits.from_settings(settings)
    assert (limits.max_bytes, limits.timeout) == (1024 * 1024, 5.0)
    assert limits.max_unpacked_bytes == settings.max_decoded_bytes


def test_text_chunk_keeps_its_positional_interface():
    chunk = TextChunk("body", "x", "body")
    assert (chunk.protected, chunk.kind) == (False, "")


def test_hostile_bytes_under_every_document_name_never_raise():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    names = ["a.docx", "a.xlsx", "a.pptx", "a.odt", "a.ods", "a.pdf", "a.rtf", "a.csv", "a.html", "a.txt", "a.bin"]
    prefixes = [b"", b"PK\x03\x04", b"%PDF-1.4\n", b"{\\rtf1 ", encrypted_magic()]

    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from(names), st.sampled_from(prefixes), st.binary(max_size=400))
    def check(name, prefix, body):
        root = Part("1", "multipart/mixed", children=(Part("1.2", "application/octet-stream", name, payload=prefix + body),))
        result = extract(ParsedMessage(b"", root))
        assert all(p.kind in ("extraction_failed", "limit_exceeded") for p in result.problems)

    check()


def encrypted_magic() -> bytes:
    from relay.extract.encrypted import OLE_MAGIC

    return OLE_MAGIC


def test_fullwidth_digits_in_every_kind_of_text_read_as_ascii_and_are_found(make_message):
    """The review's case: 'AB １２ ３４ ５６ C' in a body, an attachment and an archive member
    passed the personal-data scan. Text is folded (NFKC) when its chunk is made, so every
    detector's offsets and masked evidence refer to the folded text they were found in."""
    import asyncio

    from relay.envelope import Envelope
    from relay.organisation import Organisation
    from relay.scanners import ScanContext
    from relay.scanners.personal_data import PersonalDataScanner

    wide = "Name, NI number\nJohn Smith, AB \uff11\uff12 \uff13\uff14 \uff15\uff16 C\n"
    member = io.BytesIO()
    with zipfile.ZipFile(member, "w") as zf:
        zf.writestr("staff.txt", wide)
    raw = make_message(body=wide, attachments=[("staff.csv", wide.encode(), "text/csv"),
                                               ("staff.zip", member.getvalue(), "application/zip")])
    message = parse(raw)
    result = extract(message)
    texts = [c.text for c in result.chunks if c.where != "header Subject"]
    assert len(texts) == 3 and all("AB 12 34 56 C" in t and "\uff11" not in t for t in texts)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", ("x@partner.example.com",)), Organisation(), result)
    found = asyncio.run(PersonalDataScanner().scan(ctx))
    ninos = [f for f in found if f.type == "uk_nino"]
    assert ninos and all("\uff11" not in f.evidence for f in ninos)
