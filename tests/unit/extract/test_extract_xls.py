import datetime
import io

import xlwt  # test dependency: writes the .xls fixtures


def workbook(sheets: dict[str, list[list[object]]]) -> bytes:
    book = xlwt.Workbook()
    date_style = xlwt.easyxf(num_format_str="DD/MM/YYYY")
    stamp_style = xlwt.easyxf(num_format_str="DD/MM/YYYY HH:MM")
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, datetime.datetime):
                    sheet.write(r, c, value, stamp_style)
                elif isinstance(value, datetime.date):
                    sheet.write(r, c, value, date_style)
                else:
                    sheet.write(r, c, value)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_sheets_headers_numbers_and_dates(extract_chunk):
    data = workbook({
        "Patients": [["NHS No", "Name", "DOB", "Seen"],
                     [9434765919, "Ann Smith", datetime.date(1980, 2, 1), datetime.datetime(2024, 3, 5, 14, 30)],
                     [4010232137, None, datetime.date(1975, 12, 12), True]],
        "Other": [["free text", 1.5]],
    })
    chunk, problems = extract_chunk("patients.xls", data)
    assert problems == () and chunk.kind == "xls"
    assert chunk.text.splitlines() == [
        "Sheet: Patients", "NHS No | Name | DOB | Seen",
        "NHS No: 9434765919 | Name: Ann Smith | DOB: 01/02/1980 | Seen: 05/03/2024 14:30",
        "NHS No: 4010232137 | DOB: 12/12/1975 | Seen: TRUE",
        "", "Sheet: Other", "free text | 1.5",
    ]


def test_xls_found_by_content_whatever_its_name(extract_chunk):
    chunk, _ = extract_chunk("export.bin", workbook({"S": [["NI number"], ["QQ123456C"]]}))
    assert "NI number: QQ123456C" in chunk.text


def test_damaged_xls_is_extraction_failed(extract_chunk):
    data = workbook({"S": [["x"]]})
    chunk, problems = extract_chunk("broken.xls", data[:2000])
    assert chunk is None
    assert [(p.kind, p.type) for p in problems] == [("extraction_failed", "xls")]


def test_other_legacy_office_files_give_no_text_and_no_failure(extract_chunk):
    import olefile

    data = workbook({"S": [["x"]]}).replace("Workbook".encode("utf-16-le"), "WordDocu".encode("utf-16-le"))
    assert olefile.isOleFile(data)
    assert extract_chunk("old.doc", data) == (None, ())
