import pytest


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiters_and_header_prefixes(extract_file, sep):
    data = sep.join(["NHS No", "Name", "DOB"]) + "\r\n" + sep.join(["943 476 5919", '"Smith, Ann"', "01/02/1980"]) + "\r\n"
    text, problems = extract_file("export.csv", data.encode(), "text/csv")
    assert problems == ()
    assert text.splitlines()[1] == "NHS No: 943 476 5919 | Name: Smith, Ann | DOB: 01/02/1980"


def test_windows_1252_csv_without_charset(extract_file):
    text, _ = extract_file("export.csv", "Name;Town\nZoë;Köln\n".encode("cp1252"))
    assert text.splitlines()[1] == "Name: Zoë | Town: Köln"


def test_unbalanced_quotes_do_not_fail(extract_file):
    text, problems = extract_file("bad.csv", b'a,b\n"unterminated,x\ny,z\n')
    assert problems == () and text.startswith("a | b")
