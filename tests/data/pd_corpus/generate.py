"""Generate the labelled personal-data evaluation corpus (reproducible: fixed seed).

    .venv/bin/python tests/data/pd_corpus/generate.py [--seed 20261128] [--n 1500]

Writes ``corpus.jsonl`` next to this file, one message a line:
``{"id", "sender", "recipients", "chunks": [{"where", "text", "source"}],
"labels": ["personal_data:uk_nino", "bulk_contacts:email_address", ...],
"hold": bool, "values": [raw values planted]}``.

Labels say what a reviewer must see: a personal identifier written out,
a date introduced as someone's date of birth, many people's contact details
(>= 6 in a list), special category data about a named/identified person,
a written-out secret. ``hold`` is true when any label is present. Not
labelled (hard negatives, mixed into positive and negative mail alike):
order/invoice/ticket/tracking numbers (Luhn- and mod-11-valid ones too),
ISBNs, timestamps, versions, published test card numbers and example IBANs,
the sender's own signature (phone, address), one venue address or switchboard
number, reading lists and events on special-category topics, password-policy
text, documented example keys, invalid-prefix NINO look-alikes, meeting dates,
16-character stock, asset, serial and voucher codes laid out like a driving
licence number (:func:`scenarios.n_codes`, from a random stream of their own).

Names, towns and postcodes come from Faker (en_GB; a dev/eval dependency);
identifiers from generators below that follow each scheme's rules (stdnum for
check digits). Phone numbers are valid UK numbers (Ofcom drama ranges for
landlines, random valid mobiles): ``phonenumbers`` checks each one.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

import phonenumbers
from faker import Faker
from stdnum import iban as stdiban
from stdnum import luhn
from stdnum.gb import utr

HERE = Path(__file__).resolve().parent
NINO_FIRST = [c for c in string.ascii_uppercase if c not in "DFIQUV"]
NINO_SECOND = [c for c in string.ascii_uppercase if c not in "DFIOQUV"]
NINO_BAD = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ", "OO", "CR", "FY", "MW", "NC", "PP", "PY", "PZ"}
STREETS = ["Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Court", "Gardens", "Crescent",
           "Place", "Terrace", "Grove", "Hill", "Park", "Row", "Walk", "Mews", "Green", "Rise"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.seed = seed
        self.f = Faker("en_GB")
        self.f.seed_instance(seed)

    # ----------------------------------------------------------- identifiers
    def nino(self) -> str:
        while True:
            p = self.r.choice(NINO_FIRST) + self.r.choice(NINO_SECOND)
            if p not in NINO_BAD:
                break
        d = "".join(self.r.choice(string.digits) for _ in range(6))
        s = self.r.choice("ABCD")
        form = self.r.random()
        if form < 0.4:
            return f"{p}{d}{s}"
        if form < 0.8:
            return f"{p} {d[:2]} {d[2:4]} {d[4:]} {s}"
        if form < 0.9:
            return f"{p}{d}{s}".lower()
        return f"{p}-{d[:2]}-{d[2:4]}-{d[4:]}-{s}"

    def nhs_digits(self) -> str:
        while True:
            body = str(self.r.choice([self.r.randint(400, 499), self.r.randint(600, 799)])) + \
                "".join(self.r.choice(string.digits) for _ in range(6))
            total = sum(int(c) * w for c, w in zip(body, range(10, 1, -1)))
            check = 11 - total % 11
            check = 0 if check == 11 else check
            if check != 10 and len(set(body)) > 2:
                return body + str(check)

    def nhs(self) -> str:
        d = self.nhs_digits()
        return f"{d[:3]} {d[3:6]} {d[6:]}" if self.r.random() < 0.7 else d

    def card_digits(self) -> str:
        prefix, length = self.r.choice([("4", 16), ("4", 16), ("51", 16), ("53", 16), ("55", 16),
                                        ("2221", 16), ("2720", 16), ("2500", 16), ("34", 15), ("37", 15),
                                        ("6011", 16), ("4", 19), ("3530", 16), ("6759", 16)])
        body = prefix + "".join(self.r.choice(string.digits) for _ in range(length - len(prefix) - 1))
        return body + luhn.calc_check_digit(body)

    def card(self) -> str:
        d = self.card_digits()
        if self.r.random() < 0.3:
            return d
        if len(d) == 15:
            return f"{d[:4]} {d[4:10]} {d[10:]}"
        sep = self.r.choice([" ", " ", "-"])
        return sep.join(d[i:i + 4] for i in range(0, len(d), 4))

    def iban(self) -> str:
        cc = self.r.choice(["GB", "GB", "GB", "DE", "FR", "IE", "NL", "ES"])
        digits = lambda n: "".join(self.r.choice(string.digits) for _ in range(n))  # noqa: E731
        letters = lambda n: "".join(self.r.choice(string.ascii_uppercase) for _ in range(n))  # noqa: E731
        bban = {"GB": lambda: letters(4) + digits(14), "DE": lambda: digits(18),
                "FR": lambda: digits(10) + digits(11) + digits(2), "IE": lambda: letters(4) + digits(14),
                "NL": lambda: letters(4) + digits(10), "ES": lambda: digits(20)}[cc]()
        number = cc + "00" + bban
        number = cc + stdiban.calc_check_digits(number) + bban
        if not stdiban.is_valid(number):
            return self.iban()
        if self.r.random() < 0.6:
            return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
        return number

    def sort_account(self) -> tuple[str, str]:
        sc = "-".join(f"{self.r.randint(10, 99)}" for _ in range(3))
        return sc, "".join(self.r.choice(string.digits) for _ in range(8))

    def passport(self) -> str:
        return str(self.r.randint(1, 5)) + "".join(self.r.choice(string.digits) for _ in range(8))

    def licence(self, surname: str) -> str:
        s = "".join(c for c in surname.upper() if c.isalpha())[:5].ljust(5, "9")
        y, m, d = self.r.randint(1950, 2004), self.r.randint(1, 12), self.r.randint(1, 28)
        m += 50 if self.r.random() < 0.5 else 0
        initials = self.r.choice(string.ascii_uppercase) + self.r.choice(string.ascii_uppercase + "9")
        return f"{s}{str(y)[2]}{m:02d}{d:02d}{str(y)[3]}{initials}9{self.r.choice(string.ascii_uppercase)}" \
               f"{self.r.choice(string.ascii_uppercase)}"

    def utr(self) -> str:
        body = "".join(self.r.choice(string.digits) for _ in range(9))
        v = utr.calc_check_digit(body) + body
        return f"{v[:5]} {v[5:]}" if self.r.random() < 0.3 else v

    def dob(self) -> str:
        y, m, d = self.r.randint(1940, 2006), self.r.randint(1, 12), self.r.randint(1, 28)
        return self.r.choice([f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}",
                              f"{MONTHS[m - 1]} {d}, {y}", f"{d:02d}.{m:02d}.{y}"])

    def phone(self) -> str:
        while True:
            if self.r.random() < 0.5:
                area = self.r.choice(["020 7946", "0113 496", "0114 496", "0115 496", "0116 496", "0117 496",
                                      "0118 496", "0121 496", "0131 496", "0141 496", "0151 496", "0161 496"])
                num = f"{area} {self.r.randint(0, 999):04d}" if area.startswith("020") else \
                    f"{area} {self.r.randint(0, 999):04d}"
            else:
                num = f"07{self.r.randint(400, 999)} {self.r.randint(100000, 999999)}"
            if phonenumbers.is_valid_number(phonenumbers.parse(num, "GB")):
                return num if self.r.random() < 0.8 else "+44 " + num[1:]

    def street(self) -> str:
        name = self.f.last_name() if self.r.random() < 0.6 else self.f.first_name()
        return f"{self.r.randint(1, 220)} {name} {self.r.choice(STREETS)}"

    def address(self) -> str:
        return f"{self.street()}, {self.f.city()} {self.f.postcode()}"

    def person(self) -> tuple[str, str, str]:
        first, last = self.f.first_name(), self.f.last_name()
        title = self.r.choice(["Mr", "Ms", "Mrs", "Dr", "Miss"])
        return first, last, title

    def email_of(self, first: str, last: str, domain: str | None = None) -> str:
        domain = domain or self.r.choice(["gmail.com", "outlook.com", "example.org", "yahoo.co.uk", "btinternet.com"])
        return f"{first}.{last}{self.r.choice(['', str(self.r.randint(1, 99))])}@{domain}".lower().replace("'", "")

    def luhn_order(self) -> str:
        body = "4" + "".join(self.r.choice(string.digits) for _ in range(14))
        return body + luhn.calc_check_digit(body)


def message(g: Gen, idx: int) -> dict:
    import scenarios as sc

    first, last, _ = g.person()
    sender = g.email_of(first, last, "example.ac.uk")
    to_first, to_last, _ = g.person()
    paras, labels, values = [f"Dear {to_first},", g.r.choice(sc.FILLER)], set(), []
    chunks = []
    if g.r.random() < 0.5:
        funcs, weights = zip(*sc.POSITIVES)
        func = g.r.choices(funcs, weights)[0]
        text, lab, vals = func(g)
        labels |= lab
        values += vals
        if func is sc.p_table:
            chunks.append({"where": 'part 2 "records.csv"', "text": text, "source": "attachment"})
            paras.append("Please find the records attached.")
        else:
            paras.append(text)
    for _ in range(g.r.randint(0, 2)):
        paras.insert(g.r.randint(1, len(paras)), g.r.choice(sc.NEGATIVES)(g))
    paras.append(g.r.choice(sc.FILLER))
    # 16-character stock/asset/voucher codes (added later): their own random stream, so every
    # other paragraph of the corpus stays as it was
    extra = random.Random(f"codes:{g.seed}:{idx}")
    if extra.random() < 0.15:
        paras.insert(extra.randint(1, len(paras) - 1), sc.n_codes(extra))
    paras.append(sc.signature(g, first, last))
    body = "\n\n".join(paras) + "\n"
    subject = g.r.choice(["Update", "Re: your query", "Details", "Follow-up", "Quick question", "FW: records"])
    chunks = [{"where": "header Subject", "text": subject, "source": "header"},
              {"where": "body", "text": body, "source": "body"}] + chunks
    return {"id": f"pd{idx:05d}", "sender": sender, "recipients": [g.email_of(to_first, to_last)],
            "chunks": chunks, "labels": sorted(labels), "hold": bool(labels), "values": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--out", default=str(HERE / "corpus.jsonl"))
    args = ap.parse_args()
    g = Gen(args.seed)
    with open(args.out, "w", encoding="utf-8") as fh:
        for i in range(args.n):
            fh.write(json.dumps(message(g, i), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
