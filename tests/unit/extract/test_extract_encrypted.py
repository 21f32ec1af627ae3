import pytest

from tests.data.documents import generate as g


@pytest.fixture(scope="module")
def velvet_docx():
    return g.office_encrypted(g.docx(["Sent with the default password"], [["NI number"], ["QQ123456C"]]),
                              "VelvetSweatshop")


def test_velvetsweatshop_docx_is_extracted_and_not_protected(extract_chunk, velvet_docx):
    chunk, problems = extract_chunk("budget.docx", velvet_docx)
    assert chunk.kind == "docx" and chunk.protected is False
    assert "NI number: QQ123456C" in chunk.text.splitlines()
    assert problems == ()


def test_velvetsweatshop_xlsx_is_extracted(extract_file):
    data = g.office_encrypted(g.xlsx({"S": [["Name", "DOB"], ["Ann", "01/02/1980"]]}), "VelvetSweatshop")
    text, problems = extract_file("book.xlsx", data)
    assert problems == () and "Name: Ann | DOB: 01/02/1980" in text


def test_really_encrypted_office_file_gives_no_text_and_no_finding(extract_file):
    data = g.office_encrypted(g.docx(["secret"]), "a real password")
    assert extract_file("secret.docx", data) == (None, ())
