import pytest

from relay.scanners.personal_data import validators as v

from pd_helpers import card, nhs, utr_number


@pytest.mark.parametrize("prefix", ["AB", "CE", "JG", "WX", "ZY"])
def test_nino_prefixes_allowed(prefix):
    assert v.nino_prefix_ok(prefix)


@pytest.mark.parametrize("prefix", ["DA", "FA", "IA", "QA", "UA", "VA", "AD", "AF", "AI", "AO", "AQ", "AU", "AV",
                                    "BG", "GB", "KN", "NK", "NT", "TN", "ZZ", "OO", "CR", "FY", "MW", "NC",
                                    "PP", "PY", "PZ"])
def test_nino_prefixes_refused(prefix):
    assert not v.nino_prefix_ok(prefix)


def test_nino_suffix_and_digits():
    assert v.nino_ok("AB", "123456", "D")
    assert not v.nino_ok("AB", "123456", "E")
    assert not v.nino_ok("AB", "000000", "A")


def test_nhs_rules():
    good = nhs("485777345")
    assert v.nhs_ok(good)
    assert not v.nhs_ok(good[:-1] + str((int(good[-1]) + 1) % 10))
    assert not v.nhs_ok("4444444444")            # repdigit, passes mod 11
    assert not v.nhs_ok(nhs("999123457"))        # test range
    assert v.nhs_in_issued_range(good) and not v.nhs_in_issued_range(nhs("123456780"))


def test_nhs_check_value_ten_never_valid():
    # 100000002x: weighted sum 10*1 + 2*2 = 14 -> 11 - 3 = 8; find a body whose check would be 10
    for n in range(400000000, 400000200):
        body = str(n)
        total = sum(int(c) * w for c, w in zip(body, range(10, 1, -1)))
        if 11 - total % 11 == 10:
            assert not any(v.nhs_ok(body + str(d)) for d in range(10))
            return
    pytest.fail("no body with check value 10 in range")


@pytest.mark.parametrize("prefix,length,scheme", [("4", 16, "visa"), ("4", 19, "visa"), ("51", 16, "mastercard"),
                                                   ("2221", 16, "mastercard"), ("2720", 16, "mastercard"),
                                                   ("34", 15, "amex"), ("37", 15, "amex"), ("6011", 16, "discover"),
                                                   ("3530", 16, "jcb"), ("6759", 16, "maestro")])
def test_card_schemes(prefix, length, scheme):
    number = card(prefix, length)
    assert v.card_scheme(number) == scheme and v.card_ok(number)


@pytest.mark.parametrize("number", [card("2721"), card("2220"), card("1", 16), card("34", 16), card("9", 16)])
def test_card_outside_iin_ranges(number):
    assert not v.card_ok(number)


def test_card_placeholders():
    assert not v.card_ok("4444444444444448")
    assert not v.card_ok("0000000000000000")


def test_utr_and_generic_checks():
    assert v.utr_ok(utr_number()) and v.utr_ok("1955839661")
    assert not v.utr_ok("2955839661")
    assert v.mod11_ok(nhs("943476591")) and not v.mod11_ok("9434765918")
    assert v.mod97_ok("GB82WEST12345698765432")
    assert v.luhn_ok("79927398713") and not v.luhn_ok("79927398710")


@pytest.mark.parametrize("value,ok", [("MORGA753116SM9IJ", True), ("MORGA758116SM9IJ", True),
                                      ("LEE99753116SM9IJ", True), ("MORGA713116SM9IJ", False),
                                      ("MORGA753326SM9IJ", False), ("MO9GA753116SM9IJ", False),
                                      ("MORGA752306SM9IJ", False), ("MORGA753116991IJ", False)])
def test_licence_structure(value, ok):
    assert v.licence_ok(value) is ok


def test_dates():
    assert v.plausible_birth_date(1985, 3, 14)
    assert not v.plausible_birth_date(1985, 2, 30)
    assert not v.plausible_birth_date(1850, 1, 1)
    assert not v.plausible_birth_date(2999, 1, 1)
    assert v.shannon_entropy("aaaa") == 0 and v.shannon_entropy("abcd") == 2


def test_own_nhs_and_utr_checks_agree_with_stdnum():
    import random

    from stdnum.gb import nhs as std_nhs
    from stdnum.gb import utr as std_utr

    r = random.Random(5)
    for _ in range(20000):
        digits = f"{r.randrange(10**10):010d}"
        placeholder = v.is_placeholder(digits)
        if not placeholder and not digits.startswith("999"):
            assert v.nhs_ok(digits) == std_nhs.is_valid(digits), digits
        if not placeholder:
            assert v.utr_ok(digits) == std_utr.is_valid(digits), digits


def test_own_luhn_agrees_with_stdnum():
    import random

    from stdnum import luhn

    r = random.Random(8)
    valid = 0
    for _ in range(20000):
        digits = "".join(r.choice("0123456789") for _ in range(r.randint(1, 19)))
        if r.random() < 0.3:
            digits = digits[:-1] + luhn.calc_check_digit(digits[:-1]) if len(digits) > 1 else digits
        assert v.luhn_ok(digits) == luhn.is_valid(digits), digits
        valid += v.luhn_ok(digits)
    assert valid > 5000
    assert not v.luhn_ok("") and not v.luhn_ok("12a4")
