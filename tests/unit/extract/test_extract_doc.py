import pytest

from tests.data.documents import generate as g

TEXT = ("Referral letter\r"
        "NHS No\x07Name\x07DOB\x07\x07"
        "943 476 5919\x07Ann Smith\x0701/02/1980\x07\x07"
        "See \x13 HYPERLINK \"http://x\" \x14our site\x15 and page \x13 PAGE \x14\x15.\x0bNext line\r")


@pytest.mark.parametrize("compressed", [False, True])
def test_doc_text_tables_and_fields(extract_chunk, compressed):
    chunk, problems = extract_chunk("referral.doc", g.doc(TEXT, compressed=compressed))
    assert problems == () and chunk.kind == "doc"
    assert [line for line in chunk.text.splitlines() if line] == [
        "Referral letter", "NHS No | Name | DOB", "NHS No: 943 476 5919 | Name: Ann Smith | DOB: 01/02/1980",
        "See our site and page .", "Next line"]


def test_unicode_pieces(extract_chunk):
    chunk, _ = extract_chunk("u.doc", g.doc("Zoë – Łódź 😊\r"))
    assert chunk.text == "Zoë – Łódź 😊"


def test_doc_marked_encrypted_gives_no_text_and_no_failure(extract_chunk):
    data = bytearray(g.doc("secret\r"))
    word = data.find(b"\xec\xa5\xc1\x00")   # the FIB: set fEncrypted
    data[word + 0x0A] |= 0x00
    data[word + 0x0B] |= 0x01
    assert extract_chunk("secret.doc", bytes(data)) == (None, ())


def test_broken_piece_table_is_extraction_failed(extract_chunk):
    data = g.doc("text\r").replace(b"\x02\x10\x00\x00\x00", b"\x09\x10\x00\x00\x00", 1)
    chunk, problems = extract_chunk("bad.doc", data)
    assert chunk is None and [(p.kind, p.type) for p in problems] == [("extraction_failed", "doc")]
