from relay.scanners.personal_data.confidence import ChunkContext
from relay.scanners.personal_data.engine import _SCAN, scan_chunk

from pd_helpers import card, gb_iban, nhs


def kinds(text):
    return [m.lastgroup for m in _SCAN.finditer(text)]


def test_branches():
    assert kinds("AB123456C") == ["num"]
    assert kinds(gb_iban()) == ["iban"]
    assert kinds("MORGA753116SM9IJ") == ["lic"]
    assert kinds("Leeds LS1 4AP") == ["post"]
    assert kinds("+44 20 7946 0000") == ["pplus"]
    assert kinds("(0161) 496 0000") == ["pparen"]
    assert kinds("a@example.org") == ["email"]
    assert kinds("14/03/1985") == ["date"]
    assert kinds("price 1,234,567.89 and 3.14159265") == []


def test_two_numbers_in_one_run_are_split():
    value = nhs("485777345")
    text = f"NHS number: {value[:3]} {value[3:6]} {value[6:]} 20 45 77"
    found = {h.type for h in scan_chunk(ChunkContext(text))}
    assert "nhs_number" in found


def test_sort_code_and_account_in_one_run():
    hits = scan_chunk(ChunkContext("bank details: 20-45-77 71234568"))
    assert [h.type for h in hits] == ["uk_bank_account"]


def test_csv_cells_are_candidates():
    text = f"name,card\nJo,{card('4')}\nAl,{card('51')}\n"
    hits = [h for h in scan_chunk(ChunkContext(text, source="attachment")) if h.type == "payment_card"]
    assert len(hits) == 2


def test_non_ascii_text_keeps_offsets():
    text = "İİİ Straße — password: Tr0ub4dor&3 and Mr Ünal has been diagnosed with asthma"
    types = {h.type for h in scan_chunk(ChunkContext(text))}
    assert {"password", "health"} <= types
