import pytest

from relay.findings import Confidence

from pd_helpers import card, find, types

CARD = "personal_data:payment_card"
VISA = card("4")


def grouped(d: str) -> str:
    return " ".join(d[i:i + 4] for i in range(0, len(d), 4))


@pytest.mark.parametrize("text", [f"card number {VISA}", f"Here: {grouped(VISA)}", f"Visa {grouped(card('2221'))}",
                                  f"Amex {card('37', 15)}", f"{grouped(card('4', 19))} exp 01/29",
                                  f"pay with {'-'.join(grouped(card('51')).split())}"])
def test_cards_found_high(text):
    assert types(text).get(CARD) == Confidence.HIGH


def test_bare_plain_run_is_medium():
    assert types(f"number {VISA} thanks").get(CARD) == Confidence.MEDIUM


@pytest.mark.parametrize("text", ["4111 1111 1111 1111", "use 4242424242424242 in sandbox", "5555555555554444",
                                  "378282246310005", f"card {VISA[:-1]}{(int(VISA[-1]) + 1) % 10}",
                                  f"card {card('2721')}", "ts 1700000000000", "card 4444 4444 4444 4448"])
def test_not_cards(text):
    assert CARD not in types(text)


@pytest.mark.parametrize("text", [f"Order number: {VISA}", f"Invoice INV-1 refers to order {grouped(VISA)}",
                                  f"Tracking {VISA}", f"Transaction ID {VISA}"])
def test_order_numbers_are_low(text):
    assert types(text).get(CARD, 0) <= Confidence.LOW


def test_card_word_on_another_line_does_not_beat_order_on_this_line():
    text = f"Use the test card with any expiry.\nThanks for your order. Order number: {VISA}."
    assert types(text).get(CARD, 0) <= Confidence.LOW


def test_evidence_keeps_last_four_only():
    (f,) = find(f"card {grouped(VISA)}")
    assert f.evidence == "•••• •••• •••• " + VISA[-4:]
    assert VISA[:12] not in f.evidence.replace(" ", "")
