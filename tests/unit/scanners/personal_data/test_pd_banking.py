import pytest

from relay.findings import Confidence

from pd_helpers import find, gb_iban, types

IBAN = "personal_data:iban"
BANK = "personal_data:uk_bank_account"
GOOD = gb_iban()


def spaced(v: str) -> str:
    return " ".join(v[i:i + 4] for i in range(0, len(v), 4))


@pytest.mark.parametrize("text", [f"IBAN {GOOD}", f"pay to {spaced(GOOD)} from now", f"{spaced(GOOD)} Thanks",
                                  "account DE75512108001245126199"])
def test_iban_found(text):
    assert types(text).get(IBAN) == Confidence.HIGH


@pytest.mark.parametrize("text", ["IBAN GB82 WEST 1234 5698 7654 32", "IBAN GB29NWBK60161331926819",
                                  f"IBAN {GOOD[:-1]}{(int(GOOD[-1]) + 1) % 10}", "GB00NWBK60161331926819"])
def test_iban_examples_and_bad_checks(text):
    assert IBAN not in types(text)


def test_iban_evidence_masked():
    (f,) = find(f"IBAN {GOOD}")
    assert f.evidence.startswith("GB") and GOOD[4:-4] not in f.evidence.replace(" ", "")


@pytest.mark.parametrize("text", ["sort code 20-00-00, account number 55779911", "Sort: 40 11 62 Acc: 42345670",
                                  "bank details 20-45-77 71234568", "a/c 60-16-13 3192 6819"])
def test_sort_code_and_account(text):
    assert types(text).get(BANK) == Confidence.HIGH


def test_pair_without_bank_words_is_medium():
    assert types("please use 20-45-77 71234567 next time").get(BANK) == Confidence.MEDIUM


@pytest.mark.parametrize("text", ["Sort the files by 12-10-24 please. Order 4575 1196 4248 1613",
                                  "sort code 20-00-00 (branch)", "sort code 11-11-11 account 11111111"])
def test_not_bank_accounts(text):
    assert types(text, minimum=Confidence.MEDIUM).get(BANK) is None


def test_account_evidence_masked():
    (f,) = find("sort code 20-00-00, account number 55779911")
    assert "55779911" not in f.evidence and "20-00-00" not in f.evidence
