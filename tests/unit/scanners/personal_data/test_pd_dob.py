import pytest

from relay.findings import Confidence
from relay.scanners.personal_data.dob import parse

from pd_helpers import find, types

DOB = "personal_data:date_of_birth"


@pytest.mark.parametrize("text", ["DOB: 14/03/1985", "date of birth 3 March 1985", "born on 1985-03-14",
                                  "D.O.B. March 14, 1985", "Date of Birth: 14.03.1985", "dob 05/03/85",
                                  "Name,Date of Birth\nJo Bloggs,14/03/1985\n", "birthday: 14th Mar 1985"])
def test_dob_found(text):
    assert types(text).get(DOB) == Confidence.HIGH


@pytest.mark.parametrize("text", ["meeting on 14/03/2025", "Invoice date: 03.07.1981", "DOB: 31/02/1985",
                                  "date of birth 14/03/2999", "born in 1985", "Invoice date 01/02/1990.\nThe idea was born"])
def test_not_dob(text):
    assert DOB not in types(text)


def test_parse_orders():
    assert parse("14/03/1985") == (1985, 3, 14)
    assert parse("03/14/1985") == (1985, 3, 14)        # can only be month-first
    assert parse("1985-03-14") == (1985, 3, 14)
    assert parse("March 14, 1985") == (1985, 3, 14)
    assert parse("Smarch 14, 1985") is None


def test_evidence_masked_and_distinct():
    (f,) = find("DOB 14/03/1985, again date of birth 14 March 1985; born 2 May 1990")
    assert f.count == 2 and "1985" not in f.evidence
