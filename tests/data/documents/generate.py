"""Small documents for the extraction tests and the benchmark, built in code.

Each builder returns the bytes of a minimal but valid file of its type,
written with zipfile + hand-written XML (docx/xlsx/pptx/odt/ods), a
hand-written PDF (one Helvetica text stream per page, correct xref), or
hand-written RTF, so the tests need no writer libraries. ``pdf_encrypted``
uses pypdf and ``office_encrypted`` msoffcrypto-tool (both runtime
dependencies of relay). Nothing is stored on disk: tests build what they
need.
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape, quoteattr

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
OD = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
      'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"')


def _zip(members: dict[str, str | bytes], first: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if first:
            zf.writestr(zipfile.ZipInfo(first), members[first])   # stored, as ODF wants "mimetype"
        for name, data in members.items():
            if name != first:
                zf.writestr(name, data)
    return buf.getvalue()


def _types(overrides: dict[str, str]) -> str:
    parts = "".join(f'<Override PartName="/{n}" ContentType="{t}"/>' for n, t in overrides.items())
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="{CT}">'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f"{parts}</Types>")


def _package_rels(main: str) -> str:
    """The package relationship real readers (python-docx, openpyxl, Office) start from."""
    return ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            f'officeDocument" Target="{main}"/></Relationships>')


def _w_par(text: str) -> str:
    return f'<w:p><w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'


def _w_table(rows: list[list[str]]) -> str:
    body = "".join("<w:tr>" + "".join(f"<w:tc>{_w_par(c)}</w:tc>" for c in row) + "</w:tr>" for row in rows)
    return f"<w:tbl>{body}</w:tbl>"


def docx(paragraphs=(), table=None, header: str = "", body_xml: str = "") -> bytes:
    """A Word document: paragraphs, then an optional table (list of rows), an optional page header."""
    body = "".join(_w_par(p) for p in paragraphs) + (_w_table(table) if table else "") + body_xml
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}</w:body></w:document>'
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    members = {"word/document.xml": document}
    overrides = {"word/document.xml": main}
    if header:
        members["word/header1.xml"] = f"<w:hdr {W}>{_w_par(header)}</w:hdr>"
        overrides["word/header1.xml"] = "application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"
    return _zip({"[Content_Types].xml": _types(overrides), "_rels/.rels": _package_rels("word/document.xml"), **members})


def docx_raw(document_xml: str | bytes) -> bytes:
    """A docx whose word/document.xml is exactly ``document_xml`` (for hostile XML)."""
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    return _zip({"[Content_Types].xml": _types({"word/document.xml": main}), "word/document.xml": document_xml})


def _col(n: int) -> str:
    name = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        name = chr(65 + r) + name
    return name


def xlsx(sheets: dict[str, list[list[object]]], date_cells: frozenset[tuple[str, int, int]] = frozenset()) -> bytes:
    """A workbook; strings go to the shared-string table, numbers stay numbers.

    ``date_cells`` holds (sheet, row, col) of numbers styled as dates (numFmtId 14).
    """
    strings: list[str] = []
    index: dict[str, int] = {}
    members: dict[str, str] = {}
    overrides = {
        "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "xl/sharedStrings.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml",
        "xl/styles.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml",
    }
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    book_sheets, rels = [], []
    for n, (title, rows) in enumerate(sheets.items(), 1):
        xml_rows = []
        for r, row in enumerate(rows):
            cells = []
            for c, value in enumerate(row):
                ref = f"{_col(c)}{r + 1}"
                if value is None or value == "":
                    continue
                if isinstance(value, str):
                    if value not in index:
                        index[value] = len(strings)
                        strings.append(value)
                    cells.append(f'<c r="{ref}" t="s"><v>{index[value]}</v></c>')
                else:
                    style = ' s="1"' if (title, r, c) in date_cells else ""
                    cells.append(f'<c r="{ref}"{style}><v>{value}</v></c>')
            xml_rows.append(f'<row r="{r + 1}">{"".join(cells)}</row>')
        members[f"xl/worksheets/sheet{n}.xml"] = f'<worksheet {ns}><sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
        overrides[f"xl/worksheets/sheet{n}.xml"] = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
        book_sheets.append(f'<sheet name={quoteattr(title)} sheetId="{n}" r:id="rId{n}"/>')
        rels.append(f'<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    f'relationships/worksheet" Target="worksheets/sheet{n}.xml"/>')
    members["xl/workbook.xml"] = f'<workbook {ns} {rns}><sheets>{"".join(book_sheets)}</sheets></workbook>'
    members["xl/_rels/workbook.xml.rels"] = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'{"".join(rels)}</Relationships>')
    sst = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
    members["xl/sharedStrings.xml"] = f'<sst {ns} count="{len(strings)}">{sst}</sst>'
    members["xl/styles.xml"] = (f'<styleSheet {ns}><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14"/>'
                                "</cellXfs></styleSheet>")
    return _zip({"[Content_Types].xml": _types(overrides), "_rels/.rels": _package_rels("xl/workbook.xml"), **members})


def pptx(slides: list[list[str]], table: list[list[str]] | None = None) -> bytes:
    """A presentation: each slide a list of paragraphs; an optional table on the last slide."""
    a = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
    p = 'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
    members, overrides = {}, {
        "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"}
    members["ppt/presentation.xml"] = f"<p:presentation {p}/>"
    for n, paragraphs in enumerate(slides, 1):
        paras = "".join(f"<a:p><a:r><a:t>{escape(t)}</a:t></a:r></a:p>" for t in paragraphs)
        extra = ""
        if table and n == len(slides):
            rows = "".join("<a:tr>" + "".join(f"<a:tc><a:txBody><a:p><a:r><a:t>{escape(c)}</a:t></a:r></a:p>"
                                              "</a:txBody></a:tc>" for c in row) + "</a:tr>" for row in table)
            extra = f"<p:graphicFrame><a:graphic><a:graphicData><a:tbl>{rows}</a:tbl></a:graphicData></a:graphic></p:graphicFrame>"
        members[f"ppt/slides/slide{n}.xml"] = (f"<p:sld {p} {a}><p:cSld><p:spTree><p:sp><p:txBody>{paras}</p:txBody>"
                                               f"</p:sp>{extra}</p:spTree></p:cSld></p:sld>")
        overrides[f"ppt/slides/slide{n}.xml"] = "application/vnd.openxmlformats-officedocument.presentationml.slide+xml"
    return _zip({"[Content_Types].xml": _types(overrides), **members})


def _odf(mimetype: str, body: str, manifest_extra: str = "") -> bytes:
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {OD}><office:body>'
               f"{body}</office:body></office:document-content>")
    manifest = ('<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                f'<manifest:file-entry manifest:full-path="content.xml">{manifest_extra}</manifest:file-entry>'
                "</manifest:manifest>")
    return _zip({"mimetype": mimetype, "content.xml": content, "META-INF/manifest.xml": manifest}, first="mimetype")


def _od_table(rows: list[list[str]], name: str = "Table1") -> str:
    body = "".join("<table:table-row>" + "".join(
        f'<table:table-cell office:value-type="string"><text:p>{escape(c)}</text:p></table:table-cell>'
        if c else "<table:table-cell/>" for c in row) + "</table:table-row>" for row in rows)
    return f'<table:table table:name={quoteattr(name)}>{body}</table:table>'


def odt(paragraphs=(), table=None, encrypted: bool = False) -> bytes:
    body = "".join(f"<text:p>{escape(p)}</text:p>" for p in paragraphs) + (_od_table(table) if table else "")
    extra = "<manifest:encryption-data/>" if encrypted else ""
    return _odf("application/vnd.oasis.opendocument.text", f"<office:text>{body}</office:text>", extra)


def ods(sheets: dict[str, list[list[str]]], padded: bool = False) -> bytes:
    """A spreadsheet; ``padded`` adds the million-column and million-row padding real files carry."""
    body = ""
    for name, rows in sheets.items():
        table = _od_table(rows, name)
        if padded:
            pad = ('<table:table-row table:number-rows-repeated="1048000">'
                   '<table:table-cell table:number-columns-repeated="16384"/></table:table-row>')
            table = table.replace("</table:table>", pad + "</table:table>")
        body += table
    return _odf("application/vnd.oasis.opendocument.spreadsheet", f"<office:spreadsheet>{body}</office:spreadsheet>")


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines, Helvetica, WinAnsi text."""
    objects: list[bytes] = []
    n_pages = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    font = 3 + 2 * n_pages
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "72 760 Td", "14 TL"]
        ops += [f"{_pdf_string(line)} Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252", "replace")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf_encrypted(data: bytes, user_password: str, owner_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def office_encrypted(data: bytes, password: str) -> bytes:
    """An OOXML file wrapped in ECMA-376 agile encryption (``VelvetSweatshop`` = Excel's default).

    msoffcrypto-tool 6.1 writes packages under 4 KiB into the OLE mini stream
    wrongly (they do not decrypt again), so small inputs get an incompressible
    padding member first; real Office files are larger than that anyway.
    """
    import os

    from msoffcrypto.format.ooxml import OOXMLFile

    if len(data) < 16384:
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr(zipfile.ZipInfo("docProps/padding.bin"), os.urandom(16384))
        data = buf.getvalue()
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def rtf(paragraphs=(), table=None) -> bytes:
    def esc(text: str) -> str:
        out = []
        for ch in text:
            if ch in "\\{}":
                out.append("\\" + ch)
            elif ord(ch) < 128:
                out.append(ch)
            else:
                out.append(f"\\u{ord(ch) if ord(ch) < 32768 else ord(ch) - 65536}?")
        return "".join(out)

    body = "".join(f"\\pard {esc(p)}\\par\n" for p in paragraphs)
    if table:
        for row in table:
            cells = "".join(f"\\cellx{1500 * (i + 1)}" for i in range(len(row)))
            body += f"\\trowd{cells}\n" + "".join(f"\\pard\\intbl {esc(c)}\\cell " for c in row) + "\\row\n"
        body += "\\pard\n"
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Helvetica;}}{\\colortbl;\\red0\\green0\\blue0;}"
            "{\\*\\generator relay-tests;}{\\info{\\title Secret title}}\n" + body + "}").encode("ascii")


def replace_members(data: bytes, replacements: dict[str, str]) -> bytes:
    """The zip ``data`` with some members' contents replaced."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replacements.get(info.filename) or src.read(info.filename))
    return out.getvalue()


def add_member(data: bytes, name: str, xml: str, ctype: str) -> bytes:
    """The OOXML package ``data`` with one more part, declared in [Content_Types].xml."""
    override = f'<Override PartName="/{name}" ContentType="{ctype}"/></Types>'.encode()
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "[Content_Types].xml":
                body = body.replace(b"</Types>", override)
            dst.writestr(info.filename, body)
        dst.writestr(name, xml)
    return out.getvalue()


def _cfb(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE compound file (version 3, one FAT sector) holding ``streams``.

    Each stream is padded with NULs to 4 KiB or more (its declared size too) so
    it lives in regular sectors, not the mini stream; enough for test fixtures
    of up to ~60 KiB.
    """
    import struct

    free, end, fatsect, nostream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    names = list(streams)
    datas = [streams[n] + b"\0" * (max(4096, -(-len(streams[n]) // 512) * 512) - len(streams[n])) for n in names]
    fat = [fatsect, end]
    starts = []
    for data in datas:
        starts.append(len(fat))
        count = len(data) // 512
        fat += [len(fat) + i + 1 for i in range(count - 1)] + [end]
    assert len(fat) <= 128, "fixture too large for one FAT sector"
    fat += [free] * (128 - len(fat))

    def entry(name: str, kind: int, left: int, right: int, child: int, start: int, size: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0" if name else b""
        return (raw.ljust(64, b"\0") + struct.pack("<HBBIII", len(raw), kind, 1, left, right, child)
                + b"\0" * 36 + struct.pack("<IQ", start, size))

    # siblings ordered by (name length, upper-case name): a chain to the right is a valid tree
    order = sorted(range(len(names)), key=lambda i: (len(names[i]), names[i].upper()))
    ids = {i: n + 1 for n, i in enumerate(order)}
    directory = entry("Root Entry", 5, nostream, nostream, ids[order[0]], end, 0)
    for n, i in enumerate(order):
        right = ids[order[n + 1]] if n + 1 < len(order) else nostream
        directory += entry(names[i], 2, nostream, right, nostream, starts[i], len(datas[i]))  # >= the 4 KiB cutoff
    while len(directory) % 512:
        directory += entry("", 0, nostream, nostream, nostream, 0, 0)
    assert len(directory) == 512, "fixture has too many streams"
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<109I", 0, *([free] * 108)))
    return header + struct.pack("<128I", *fat) + directory + b"".join(datas)


def doc(text: str, compressed: bool = False) -> bytes:
    """A Word 97-2003 document: a FIB, the text as one piece, and its piece table in 1Table.

    ``text`` uses Word's marks: \\r paragraph end, \\x07 cell end (twice ends a row),
    \\x13 field begin, \\x14 separator, \\x15 field end.
    """
    import struct

    fib = bytearray(0x800)
    struct.pack_into("<HH", fib, 0, 0xA5EC, 0x00C1)          # wIdent, nFib (Word 97)
    struct.pack_into("<H", fib, 0x0A, 0x0200)               # fWhichTblStm: the table stream is 1Table
    body = text.encode("cp1252") if compressed else text.encode("utf-16-le")
    fc = 0x800 * 2 | 0x40000000 if compressed else 0x800    # compressed: byte offset * 2, flag bit 30
    plc = struct.pack("<II", 0, len(text)) + struct.pack("<HIH", 0, fc, 0)
    clx = b"\x02" + struct.pack("<I", len(plc)) + plc
    struct.pack_into("<II", fib, 0x01A2, 0, len(clx))       # fcClx, lcbClx
    return _cfb({"WordDocument": bytes(fib) + body, "1Table": clx})
