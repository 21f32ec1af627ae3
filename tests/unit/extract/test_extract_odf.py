from tests.data.documents import generate as g

ROWS = [["NHS No", "Name", "DOB"], ["943 476 5919", "Ann Smith", "01/02/1980"]]


def test_odt_paragraphs_and_table(extract_file):
    text, problems = extract_file("letter.odt", g.odt(["Dear Ann,", "Results attached."], ROWS))
    assert problems == ()
    assert text.splitlines() == ["Dear Ann,", "Results attached.", "", "NHS No | Name | DOB",
                                 "NHS No: 943 476 5919 | Name: Ann Smith | DOB: 01/02/1980"]


def test_ods_sheets_padded_to_a_million_cells_cost_nothing(extract_file):
    text, problems = extract_file("list.ods", g.ods({"Patients": ROWS, "Empty": [[""]]}, padded=True))
    assert problems == ()
    assert text.splitlines() == ["Sheet: Patients", "", "NHS No | Name | DOB",
                                 "NHS No: 943 476 5919 | Name: Ann Smith | DOB: 01/02/1980", "", "Sheet: Empty"]


def test_ods_repeated_cells_keep_columns_aligned(extract_file):
    body = ('<office:spreadsheet><table:table table:name="S"><table:table-row>'
            '<table:table-cell><text:p>Name</text:p></table:table-cell>'
            '<table:table-cell table:number-columns-repeated="3"/>'
            '<table:table-cell><text:p>DOB</text:p></table:table-cell></table:table-row><table:table-row>'
            '<table:table-cell><text:p>Ann</text:p></table:table-cell>'
            '<table:table-cell table:number-columns-repeated="3"/>'
            '<table:table-cell office:value-type="date" office:date-value="1980-02-01"/>'
            "</table:table-row></table:table></office:spreadsheet>")
    text, _ = extract_file("s.ods", g._odf("application/vnd.oasis.opendocument.spreadsheet", body))
    assert text.splitlines()[-1] == "Name: Ann | DOB: 1980-02-01"


def test_password_protected_odt_gives_no_text_and_no_failure(extract_file):
    assert extract_file("secret.odt", g.odt(["x"], encrypted=True)) == (None, ())


def test_broken_content_is_extraction_failed(extract_file):
    text, problems = extract_file("x.odt", g._odf("application/vnd.oasis.opendocument.text", "<office:text><text:p>"))
    assert text is None and [(p.kind, p.type) for p in problems] == [("extraction_failed", "odt")]


def test_odp_slides(extract_file):
    body = ('<office:presentation><draw:page xmlns:draw="d"><draw:frame><draw:text-box><text:p>Slide one</text:p>'
            "</draw:text-box></draw:frame></draw:page><draw:page xmlns:draw=\"d\"><draw:frame><draw:text-box>"
            "<text:p>NI QQ123456C</text:p></draw:text-box></draw:frame></draw:page></office:presentation>")
    text, problems = extract_file("deck.odp", g._odf("application/vnd.oasis.opendocument.presentation", body))
    assert problems == () and text.splitlines() == ["Slide one", "NI QQ123456C"]
