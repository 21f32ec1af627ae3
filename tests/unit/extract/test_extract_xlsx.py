from tests.data.documents import generate as g


def test_sheets_with_headers_dates_and_title_rows(extract_file):
    data = g.xlsx(
        {"Patients": [["Patient list"], ["NHS No", "Name", "DOB"], [9434765919, "Ann Smith", 29252],
                      [4010232137, None, 27375]],
         "Notes": [["free text", 1.5]]},
        date_cells=frozenset({("Patients", 2, 2), ("Patients", 3, 2)}),
    )
    text, problems = extract_file("patients.xlsx", data)
    assert problems == ()
    assert text.splitlines() == [
        "Sheet: Patients", "Patient list", "NHS No | Name | DOB",
        "NHS No: 9434765919 | Name: Ann Smith | DOB: 01/02/1980",
        "NHS No: 4010232137 | DOB: 12/12/1974",
        "", "Sheet: Notes", "free text | 1.5",
    ]


def test_sparse_cells_keep_their_column_header(extract_file):
    data = g.xlsx({"S": [["Name", None, None, "NI number"], [None, None, None, "QQ123456C"]]})
    text, _ = extract_file("s.xlsx", data)
    assert "NI number: QQ123456C" in text.splitlines()


def test_inline_strings_booleans_and_custom_date_formats(extract_file):
    sheet = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             '<row r="1"><c r="A1" t="inlineStr"><is><t>Flag</t></is></c><c r="B1" t="inlineStr"><is><r><t>Da</t></r>'
             '<r><t>te</t></r></is></c><c r="C1" t="str"><f>A1</f><v>Formula</v></c></row>'
             '<row r="2"><c r="A2" t="b"><v>1</v></c><c r="B2" s="1"><v>45292.604166666664</v></c><c r="C2" t="str"><v>x</v></c></row>'
             "</sheetData></worksheet>")
    styles = ('<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1">'
              '<numFmt numFmtId="164" formatCode="dd\\-mmm\\-yyyy hh:mm"/></numFmts>'
              '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164"/></cellXfs></styleSheet>')
    data = g.xlsx({"S": [["placeholder"]]})
    data = g.replace_members(data, {"xl/worksheets/sheet1.xml": sheet, "xl/styles.xml": styles})
    text, problems = extract_file("x.xlsx", data)
    assert problems == ()
    assert text.splitlines()[1:] == ["Flag | Date | Formula", "Flag: TRUE | Date: 01/01/2024 14:30 | Formula: x"]


def test_cell_comments_are_text(extract_file):
    comments = ('<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><authors><author>Ann'
                '</author></authors><commentList><comment ref="B2" authorId="0"><text><r><t>Ann:</t></r><r><t xml:space='
                '"preserve"> NI QQ123456C</t></r></text></comment><comment ref="C3" authorId="0"><text><t>second</t>'
                "</text></comment></commentList></comments>")
    data = g.add_member(g.xlsx({"S": [["Name"], ["Bob"]]}), "xl/comments1.xml", comments,
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml")
    text, problems = extract_file("c.xlsx", data)
    assert problems == ()
    assert text.splitlines()[-3:] == ["Comments:", "Ann: NI QQ123456C", "second"]

