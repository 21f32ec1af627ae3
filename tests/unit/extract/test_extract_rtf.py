from relay.extract import rtf
from relay.extract.budget import Budget
from tests.data.documents import generate as g


def run(data: bytes) -> str:
    return rtf.extract(data, Budget(1 << 20, 1 << 20, float("inf")))


def test_paragraphs_unicode_and_table_headers(extract_file):
    text, problems = extract_file("letter.rtf", g.rtf(["Dear Zoë,", "Results £5"],
                                                      [["NHS No", "DOB"], ["943 476 5919", "01/02/1980"]]))
    assert problems == ()
    assert [line for line in text.splitlines() if line] == [
        "Dear Zoë,", "Results £5", "NHS No | DOB", "NHS No: 943 476 5919 | DOB: 01/02/1980"]
    assert "Secret title" not in text and "Helvetica" not in text and "relay-tests" not in text


def test_hex_bytes_code_page_unicode_skip_and_header_destination():
    data = (rb"{\rtf1\ansi\ansicpg1251{\fonttbl{\f0 Arial;}}{\header Page header\par}"
            rb"\'c6\uc1\u1046?\u-10179?\u-8694?x\~y\tab z\line w{\*\unknowndest hidden}}")
    assert run(data) == "Page header\nЖЖ\U0001f60ax y\tz\nw"


def test_rtf_by_signature_and_unbalanced_groups_do_not_fail(extract_file):
    text, problems = extract_file("note.doc", b"{\\rtf1 Hello }}}} world {{{")
    assert text == "Hello world" and problems == ()


def test_deep_group_nesting_stops_without_error():
    assert run(b"{\\rtf1 a" + b"{" * 100000 + b"b") == "a"
