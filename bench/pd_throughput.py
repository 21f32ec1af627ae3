"""Personal-data scanner throughput (MB of text per second, one core).

    .venv/bin/python bench/pd_throughput.py [--mb 8] [--presidio]

Three inputs, each scanned with ``relay.scanners.personal_data.detect``:

* ``typical``: business mail prose (Faker en_GB sentences, fixed seed) with
  what ordinary mail carries: dates, money, order numbers, a URL, an e-mail
  address, a signature with a phone number and address, about one personal
  identifier per 20 KB; messages of 2-40 KB;
* ``corpus``: the labelled evaluation corpus (short messages dense with
  identifiers: the worst case per byte);
* ``table``: a 2 MB CSV of staff records (name, e-mail, phone, NINO, DOB).

``--presidio`` also runs Presidio's predefined pattern recognizers (no NLP
model) on a slice of ``typical`` for the ratio.

``--hostile`` times dense and adversarial texts (a unit repeated: date-of-birth
words with dates, NINOs, card-shaped numbers, sort codes, phones, e-mail
addresses, postcodes), each on one long line and one unit a line, at two sizes
(``--hostile-mb`` / 4 and ``--hostile-mb``, default 0.6 MB): the same MB/s at
both sizes means linear time. Single process, wall clock
of the scanning only (text is built first), measured as CPU time of this
process (the machine is shared, wall clock would measure the neighbours);
the best of three runs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.extract import TextChunk  # noqa: E402
from relay.scanners.personal_data import detect  # noqa: E402


def typical(mb: float, seed: int = 7) -> list[str]:
    from faker import Faker

    f = Faker("en_GB")
    f.seed_instance(seed)
    r = random.Random(seed)
    extras = [lambda: f"Order number {r.randint(10**9, 10**10)} was dispatched on {f.date()}.",
              lambda: f"The invoice total is £{r.randint(10, 99999):,}.{r.randint(0, 99):02d} including VAT.",
              lambda: f"See https://intranet.example.ac.uk/docs/{r.randint(100, 999)} for details.",
              lambda: f"Please copy {f.first_name().lower()}@example.ac.uk on the reply.",
              lambda: f"Meeting moved to {f.day_of_week()} {r.randint(1, 28)} {f.month_name()} at {r.randint(9, 17)}:00.",
              lambda: f"Version {r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)} is now deployed.",
              lambda: f"Ref: {f.bothify('??-####-??').upper()}"]
    messages, total = [], 0
    while total < mb * 1e6:
        size = r.choice([2_000, 4_000, 8_000, 16_000, 40_000])
        parts = [f"Dear {f.first_name()},"]
        n = 0
        while n < size:
            para = " ".join(f.sentence(nb_words=r.randint(8, 22)) for _ in range(r.randint(2, 6)))
            if r.random() < 0.5:
                para += " " + r.choice(extras)()
            if r.random() < 0.03:
                para += f" Her NI number is {f.bothify('??######?').upper()}."
            parts.append(para)
            n += len(para)
        parts.append(f"Kind regards,\n{f.name()}\n{f.job()}\nTel: 0161 496 0{r.randint(100, 999)}\n"
                     f"{f.street_address()}\n{f.city()} {f.postcode()}")
        text = "\n\n".join(parts)
        messages.append(text)
        total += len(text.encode())
    return messages


def corpus() -> list[str]:
    path = ROOT / "tests/data/pd_corpus/corpus.jsonl"
    with path.open(encoding="utf-8") as fh:
        return ["\n".join(c["text"] for c in json.loads(line)["chunks"]) for line in fh]


def table(rows: int = 20_000, seed: int = 3) -> list[str]:
    from faker import Faker

    f = Faker("en_GB")
    f.seed_instance(seed)
    lines = ["Name,Email,Phone,NI Number,Date of Birth"]
    for _ in range(rows):
        lines.append(f"{f.name()},{f.email()},0113 496 0{f.random_int(100, 999)},"
                     f"{f.bothify('??######?').upper()},{f.date_of_birth().strftime('%d/%m/%Y')}")
    return ["\n".join(lines)]


HOSTILE = {
    "dob words": "born dob birthday date of birth ",
    "dob words + dates": "DOB 01/02/1980 born 3 March 1985 birthday ",
    "dob month-first": "dob March 14, 1985 ",
    "nino": "AB 12 34 56 C ",
    "card-shaped": "4539 1488 0343 6467 ",
    "sort codes": "12-34-56 ",
    "phones": "0161 496 0000 ",
    "e-mail": "a.b@example.org ",
    "postcodes": "12 High Street LS1 4AB ",
}


def hostile(mb: float) -> None:
    print(f"\nhostile texts, MB/s (CPU) at {mb / 4:.2f} MB and {mb:.2f} MB (same figure = linear):")
    for name, unit in HOSTILE.items():
        row = []
        for sep in ("", "\n"):
            for size in (mb / 4, mb):
                text = (unit + sep) * int(size * 1e6 / (len(unit) + len(sep)))
                row.append(measure([text], runs=1))
        print(f"  {name:18} one line {row[0]:6.2f} / {row[1]:6.2f}   a line each {row[2]:6.2f} / {row[3]:6.2f}")


def measure(texts: list[str], runs: int = 3) -> float:
    size = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        for t in texts:
            detect([TextChunk("body", t, "body")])
        best = min(best, time.process_time() - t0)
    return size / best / 1e6


def measure_presidio(texts: list[str]) -> float:
    from eval_pd import presidio_recognizers  # sibling script (bench/ is on sys.path)

    recs = presidio_recognizers()
    size = sum(len(t.encode()) for t in texts)
    t0 = time.process_time()
    for t in texts:
        for rec in recs:
            rec.analyze(t, rec.supported_entities, nlp_artifacts=None)
    return size / (time.process_time() - t0) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=8.0, help="size of the typical-mail sample")
    ap.add_argument("--presidio", action="store_true")
    ap.add_argument("--hostile", action="store_true", help="dense and adversarial texts at two sizes")
    ap.add_argument("--hostile-mb", type=float, default=0.6)
    args = ap.parse_args()
    detect([TextChunk("body", "warm up 0161 496 0000 AB123456C", "body")])
    samples = {"typical": typical(args.mb), "corpus": corpus(), "table": table()}
    for name, texts in samples.items():
        size = sum(len(t.encode()) for t in texts)
        print(f"{name:8} {size / 1e6:6.2f} MB in {len(texts):5d} texts: {measure(texts):6.1f} MB/s")
    if args.presidio:
        sub = samples["typical"][:40]
        ours = measure(sub, runs=1)
        theirs = measure_presidio(sub)
        print(f"Presidio pattern recognizers on typical[:40]: {theirs:.2f} MB/s; ours {ours:.1f} MB/s "
              f"(x{ours / theirs:.0f})")
    if args.hostile:
        hostile(args.hostile_mb)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
