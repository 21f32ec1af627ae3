import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.extract import extract
from relay.extract.documents import guess
from relay.message import ParsedMessage, Part
from tests.data.documents import generate as g

ROWS = [["NHS No", "DOB"], ["943 476 5919", "01/02/1980"]]


def _xls() -> bytes:
    import io

    import xlwt  # test dependency

    book = xlwt.Workbook()
    sheet = book.add_sheet("S")
    for r, row in enumerate(ROWS):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
SAMPLES = {
    "a.docx": g.docx(["Hello"], ROWS, header="H"),
    "a.xlsx": g.xlsx({"S": ROWS}),
    "a.pptx": g.pptx([["Slide"]], ROWS),
    "a.odt": g.odt(["Hello"], ROWS),
    "a.ods": g.ods({"S": ROWS}),
    "a.pdf": g.pdf([["Hello"]]),
    "a.rtf": g.rtf(["Hello"], ROWS),
    "a.csv": b"NHS No,DOB\n943 476 5919,01/02/1980\n",
    "a.xls": _xls(),
    "a.doc": g.doc("NHS No\x07DOB\x07\x07943 476 5919\x0701/02/1980\x07\x07"),
}


@pytest.mark.parametrize(("name", "ctype", "payload", "expected"), [
    ("x.bin", "application/octet-stream", b"%PDF-1.7\n", "pdf"),
    ("x.pdf", "application/pdf", b"\x7fELF", None),             # a lie about the type: the file-type scanner's
    ("x.docx", "application/octet-stream", b"junk\x00\x01", None),
    ("x.rtf", "application/rtf", b"MZ\x90\x00", None),
    # text under a document name, or under no known name or type, is read as text
    ("staff.docx", "application/octet-stream", b"AB 12 34 56 C", "text"),
    ("staff.xlsx", "application/vnd.ms-excel", b"a,b\r\n", "text"),
    ("staff.pdf", "application/pdf", b"name,nhs\n", "text"),
    ("staff.rtf", "application/rtf", "caf\u00e9".encode(), "text"),
    ("staff.dat", "application/octet-stream", b"a,b\n1,2\n", "text"),
    ("staff", "application/octet-stream", "\ufeffa,b\r\n".encode("utf-16"), "text"),
    ("staff", "application/octet-stream", b"\x89PNG\r\n\x1a\n\x00\x00", None),
    ("staff.dat", "application/octet-stream", b"\xff\xfe\xfd", None),
    ("x.txt", "text/plain", b"MZ", "text"),
    ("x", "application/octet-stream", b"PK\x03\x04", "zip"),
    ("x.doc", "application/msword", b"{\\rtf1 x}", "rtf"),
    ("x.htm", "application/octet-stream", b"<p>", "html"),
    ("x", "text/csv", b"a,b", "csv"),
    ("x.tsv", "application/octet-stream", b"a\tb", "csv"),
    ("x.vcf", "application/octet-stream", b"BEGIN:VCARD", "text"),
    ("x", "text/calendar", b"BEGIN:VCALENDAR", "text"),
    ("x.png", "image/png", b"\x89PNG", None),
])
def test_guess(name, ctype, payload, expected):
    assert guess(Part("2", ctype, name, payload=payload)) == expected


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_extracts_cleanly(name):
    root = Part("1", "multipart/mixed", children=(Part("1.2", "application/octet-stream", name, payload=SAMPLES[name]),))
    result = extract(ParsedMessage(b"", root))
    assert result.problems == ()
    assert result.chunks and result.chunks[0].kind == name.rsplit(".", 1)[1]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_damaged_documents_never_raise(name, data):
    sample = bytearray(SAMPLES[name])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(sample) - 1))
        sample[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(sample) // 2, len(sample)))
    root = Part("1", "multipart/mixed", children=(Part("1.2", "application/octet-stream", name, payload=bytes(sample[:cut])),))
    result = extract(ParsedMessage(b"", root))
    assert all(p.kind == "extraction_failed" and p.where == f'part 1.2 "{name}"' for p in result.problems)


def test_text_cut_at_the_sniff_edge_is_text_and_misnamed_text_is_extracted():
    from relay.extract.plain import SNIFF, is_text
    long = ("x" * (SNIFF - 1) + "\u00e9" * 10).encode()   # a two-byte character across the edge
    assert is_text(long)
    assert not is_text(b"x" * (SNIFF - 1) + b"\xff")
    rows = b"Name, NHS number\r\nJohn Smith, 943 476 5919\r\n"
    for name in ("staff.docx", "staff.dat", "staff"):
        root = Part("1", "multipart/mixed", children=(Part("1.2", "application/octet-stream", name, payload=rows),))
        result = extract(ParsedMessage(b"", root))
        assert [c.kind for c in result.chunks] == ["text"] and "943 476 5919" in result.chunks[0].text
