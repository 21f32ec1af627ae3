from relay.scanners.personal_data import redact


def test_shapes():
    assert redact.nino("ab", "c") == "AB •• •• •• C"
    assert redact.card("4539148803436467") == "•••• •••• •••• 6467"
    assert redact.card("371449635398431") == "•••• •••••• •8431"
    assert redact.grouped("4857773456", (3, 3, 4)) == "••• ••• ••••"
    assert redact.iban("GB29NWBK60161331926819") == "GB•• •••• •••• •••• ••68 19"
    assert redact.mask("AB-12", keep_end=1) == "••-••"           # too short to keep anything
    assert redact.mask("123456789", keep_end=2) == "•••••••89"
    assert redact.email("jane@example.org") == "j•••@example.org"
    assert redact.count_of(3, "phone numbers") == "3 distinct phone numbers"


def test_mask_without_separators_is_the_general_rule():
    import random

    r = random.Random(4)
    for _ in range(3000):
        value = "".join(r.choice("0123456789ABCxyz") for _ in range(r.randint(1, 20)))
        ks, ke = r.randint(0, 4), r.randint(0, 4)
        spaced = " " + value                # a separator takes the general path
        assert redact.mask(value, keep_end=ke, keep_start=ks) == redact.mask(spaced, keep_end=ke, keep_start=ks)[1:]
