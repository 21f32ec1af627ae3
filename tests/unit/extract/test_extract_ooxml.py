import io
import zipfile

import pytest

from relay.extract import ExtractLimits
from tests.data.documents import generate as g

ROWS = [["NHS No", "Name", "DOB"], ["943 476 5919", "Ann Smith", "01/02/1980"], ["401 023 2137", "", "12/12/1975"]]
EXPECTED_ROWS = ["NHS No | Name | DOB", "NHS No: 943 476 5919 | Name: Ann Smith | DOB: 01/02/1980",
                 "NHS No: 401 023 2137 | DOB: 12/12/1975"]


def test_docx_paragraphs_table_and_header(extract_file):
    text, problems = extract_file("letter.docx", g.docx(["Dear Ann,", "Your results & notes."], ROWS, header="CONFIDENTIAL"))
    assert problems == ()
    lines = text.splitlines()
    assert lines[:2] == ["Dear Ann,", "Your results & notes."]
    assert all(row in lines for row in EXPECTED_ROWS)
    assert "CONFIDENTIAL" in lines


def test_docx_keeps_text_boxes_once_and_deleted_text(extract_file):
    body = ('<w:p><w:r><w:t>Before</w:t></w:r><w:r><w:tab/></w:r><w:del><w:r><w:delText>QQ 12 34 56 C</w:delText>'
            '</w:r></w:del><mc:AlternateContent xmlns:mc="m"><mc:Choice><w:txbxContent><w:p><w:r><w:t>in a box</w:t>'
            '</w:r></w:p></w:txbxContent></mc:Choice><mc:Fallback><w:txbxContent><w:p><w:r><w:t>in a box</w:t></w:r>'
            '</w:p></w:txbxContent></mc:Fallback></mc:AlternateContent><w:r><w:instrText>HYPERLINK x</w:instrText></w:r></w:p>')
    text, _ = extract_file("a.docx", g.docx(body_xml=body))
    assert "QQ 12 34 56 C" in text and "Before" in text
    assert text.count("in a box") == 1
    assert "HYPERLINK" not in text


def test_docm_by_content_type_even_with_another_name(extract_file):
    text, problems = extract_file("attachment.bin", g.docx(["macro-free text"]))
    assert text == "macro-free text" and problems == ()


def test_pptx_comments_are_text(extract_file):
    comment = ('<p:cmLst xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cm authorId="0">'
               "<p:pos x=\"1\" y=\"1\"/><p:text>Check DOB 01/02/1980</p:text></p:cm></p:cmLst>")
    data = g.add_member(g.pptx([["Slide"]]), "ppt/comments/comment1.xml", comment,
                       "application/vnd.openxmlformats-officedocument.presentationml.comments+xml")
    text, _ = extract_file("c.pptx", data)
    assert text.splitlines() == ["Slide", "", "Check DOB 01/02/1980"]


def test_pptx_slides_in_order_with_table(extract_file):
    slides = [[f"Slide {n}"] for n in range(1, 12)]
    text, problems = extract_file("deck.pptx", g.pptx(slides, table=ROWS))
    assert problems == ()
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("Slide")] == [f"Slide {n}" for n in range(1, 12)]
    assert all(row in lines for row in EXPECTED_ROWS)


@pytest.mark.parametrize(("name", "data", "type_"), [
    ("cv.docx", g.docx(["Hello"])[:150], "docx"),               # truncated zip
    ("sheet.xlsx", b"PK\x03\x04" + bytes(range(256)) * 4, "xlsx"),  # zip signature, garbage after
    ("deck.pptx", g.docx_raw("<unclosed><tag>"), "docx"),       # really a docx, broken XML: named by content
])
def test_corrupt_documents_are_extraction_failed(extract_file, name, data, type_):
    text, problems = extract_file(name, data)
    assert text is None
    assert [(p.kind, p.type, p.where) for p in problems] == [("extraction_failed", type_, f'part 1.2 "{name}"')]


def test_a_docx_name_on_other_bytes_is_not_read(extract_file):
    # the lie about the type is the file-type scanner's finding, not a failed extraction
    assert extract_file("cv.docx", b"\x7fELF\x02\x01\x01" + bytes(100)) == (None, ())


def test_billion_laughs_is_refused(extract_file):
    entities = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY l0 "lol">{entities}]>'
            '<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>&l9;</w:t></w:r></w:p></w:body></w:document>')
    text, problems = extract_file("bomb.docx", g.docx_raw(bomb))
    assert text is None
    assert [(p.kind, p.type, p.evidence) for p in problems] == [("extraction_failed", "docx", "UnsafeXML")]


def test_external_entity_is_refused(extract_file):
    xxe = ('<?xml version="1.0"?><!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>')
    text, problems = extract_file("xxe.docx", g.docx_raw(xxe))
    assert text is None and problems[0].kind == "extraction_failed"


def test_member_inflating_past_the_bound_is_limit_exceeded(extract_file):
    padding = "<w:p><w:r><w:t>" + " " * 1000 + "</w:t></w:r></w:p>"
    document = '<w:document xmlns:w="x"><w:body>' + padding * 3000 + "</w:body></w:document>"   # ~3 MB, deflates to KBs
    data = g.docx_raw(document)
    assert len(data) < 100_000
    text, problems = extract_file("bomb.docx", data, limits=ExtractLimits(max_unpacked_bytes=1_000_000))
    assert text is None
    assert [(p.kind, p.type) for p in problems] == [("limit_exceeded", "max_unpacked_bytes")]


def test_text_budget_stops_a_long_document_early(extract_file):
    data = g.docx([f"paragraph {n} " + "x" * 100 for n in range(5000)])
    text, problems = extract_file("long.docx", data, limits=ExtractLimits(max_bytes=10_000))
    assert len(text.encode()) <= 10_000
    assert [(p.kind, p.type) for p in problems] == [("limit_exceeded", "max_extract_bytes")]


def test_plain_zip_is_not_a_document(extract_file):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "hello")
    text, problems = extract_file("files.zip", buf.getvalue())
    assert text is None and problems == ()


def test_deadline_is_checked_inside_a_document():
    import time

    from relay.extract import ooxml
    from relay.extract.budget import Budget, OutOfTime
    from relay.extract.container import open_zip

    with open_zip(g.docx(["text"])) as zf:
        with pytest.raises(OutOfTime):
            ooxml.extract(zf, Budget(1 << 20, 1 << 20, time.monotonic() - 1))
