from relay.findings import Confidence
from relay.scanners.personal_data.confidence import ChunkContext, band, words

NHS = words(["nhs", "nhs number"])


def test_band_ladder():
    assert band(False, False, False) == Confidence.MEDIUM
    assert band(False, True, False) == Confidence.HIGH
    assert band(True, False, False) == Confidence.HIGH
    assert band(False, False, True) == Confidence.LOW
    assert band(True, True, True) == Confidence.MEDIUM


def test_keywords_both_directions_whole_words():
    text = "4857773456 is the NHS number"
    cc = ChunkContext(text)
    assert cc.evidence(NHS, NHS, 0, 10) == (True, False)
    cc = ChunkContext("nhsx 4857773456")
    assert cc.evidence(NHS, NHS, 5, 15) == (False, False)


def test_window_limit():
    text = "NHS" + " " * 80 + "4857773456"
    cc = ChunkContext(text)
    assert cc.evidence(NHS, NHS, 83, 93) == (False, False)


def test_negative_part_of_positive_phrase_does_not_count():
    utr = words(["unique taxpayer reference"])
    text = "Unique Taxpayer Reference: 1955839661"
    cc = ChunkContext(text)
    assert cc.evidence(utr, utr, 27, 37) == (True, False)


def test_nearest_wins_and_same_line():
    text = "NHS number list\nOrder 4857773456"
    cc = ChunkContext(text)
    start = text.index("4857")
    assert cc.evidence(NHS, NHS, start, start + 10) == (False, True)


def test_column_header():
    text = "name,nhs number,order\nJo,4857773456,1234567890\nAl,9434765919,2222\n"
    cc = ChunkContext(text)
    first = text.index("4857")
    assert cc.header(first) == "nhs number"
    assert cc.evidence(None, NHS, first, first + 10) == (True, False)
    other = text.index("1234567890")
    assert cc.evidence(None, NHS, other, other + 10) == (False, True)
    assert ChunkContext("a,b\n1,2\n").header(0) == ""


def test_extractor_table_rows_label_each_cell():
    text = ("Name | NHS Number | Order No\n"
            "Name: Jo Bloggs | NHS Number: 485 777 3450 | Order No: 4857773450\n"
            "Name: Al | Order No: 9434765919\n")
    cc = ChunkContext(text)
    nhs_pos = text.index("485 777")
    assert cc.header(nhs_pos) == "nhs number"
    assert cc.evidence(None, NHS, nhs_pos, nhs_pos + 12) == (True, False)
    order_pos = text.index("9434765919")                 # the Name cell is missing in this row
    assert cc.header(order_pos) == "order no"
    assert cc.evidence(NHS, NHS, order_pos, order_pos + 10)[1] is True
