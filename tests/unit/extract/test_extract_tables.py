from relay.extract.tables import render


def rows(*lists):
    return [list(enumerate(r)) for r in lists]


def test_header_row_prefixes_values():
    text = render(rows(["NHS No", "NI number", "DOB"], ["943 476 5919", "QQ 12 34 56 C", "01/02/1980"]))
    assert text.splitlines() == ["NHS No | NI number | DOB",
                                 "NHS No: 943 476 5919 | NI number: QQ 12 34 56 C | DOB: 01/02/1980"]


def test_empty_cells_are_left_out_and_sparse_columns_keep_their_header():
    text = render([[(0, "Name"), (3, "DOB")], [(3, "01/02/1980")], [(0, "Ann"), (1, ""), (3, "02/03/1990")]])
    assert text.splitlines()[1:] == ["DOB: 01/02/1980", "Name: Ann | DOB: 02/03/1990"]


def test_header_colon_is_not_doubled():
    assert render(rows(["Phone:", "x"], ["07700 900123", "y"])).splitlines()[1] == "Phone: 07700 900123 | x: y"


def test_title_row_is_kept_above_the_header():
    text = render(rows(["Patient list", "", ""], ["NHS No", "Name", "Ward"], ["9434765919", "Ann", "B2"]))
    assert text.splitlines() == ["Patient list", "NHS No | Name | Ward", "NHS No: 9434765919 | Name: Ann | Ward: B2"]


def test_no_header_when_the_first_row_holds_numbers_or_long_text():
    assert render(rows(["9434765919", "Ann"], ["4010232137", "Bob"])).splitlines() == ["9434765919 | Ann", "4010232137 | Bob"]
    long = "x" * 80
    assert render(rows([long, "a"], ["b", "c"])).splitlines() == [f"{long} | a", "b | c"]


def test_single_row_is_plain_and_header_hint_overrides():
    assert render(rows(["Name", "DOB"])) == "Name | DOB"
    assert render(rows(["2023", "2024"], ["1", "2"]), header_hint=True).splitlines()[1] == "2023: 1 | 2024: 2"
    assert render(rows(["Name", "DOB"], ["a", "b"]), header_hint=False).splitlines()[1] == "a | b"


def test_empty_table():
    assert render([]) == "" and render(rows(["", ""])) == ""
