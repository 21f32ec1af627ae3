"""Personal-data detection quality on the labelled corpus, side by side with Presidio.

    .venv/bin/python bench/eval_pd.py [--corpus tests/data/pd_corpus/corpus.jsonl] [--no-presidio]

Per type (message level): a type counts as detected when a finding of it has
confidence MEDIUM or higher (single phone numbers and addresses are LOW by
design and are not labels). Message level "hold", as the shipped policy holds
mail to external recipients: a personal_data finding at HIGH, or a
special_category, bulk_contacts or credential finding at MEDIUM or HIGH;
against the corpus's ``hold`` label.

Presidio (presidio-analyzer, a dev/eval dependency) runs its predefined
*pattern* recognizers only, no NLP model (``recognizer.analyze(text,
entities, nlp_artifacts=None)``), on the same chunks, every result counted
(its default score threshold is 0). Its contact entities are put through the
same bulk rule as ours (>= BULK_MIN distinct values in one chunk). Shared
types: uk_nino, nhs_number, payment_card, iban, uk_passport,
uk_driving_licence and the three bulk contact types.

Throughput: CPU time of this process, both sides warmed up first (one small
text each, as the relay's scanner does at start-up), then run ``--rounds``
times alternating, the best run of each side counted (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.extract import TextChunk  # noqa: E402
from relay.findings import Confidence  # noqa: E402
from relay.scanners.personal_data import detect  # noqa: E402
from relay.scanners.personal_data.contacts import BULK_MIN  # noqa: E402

WARM_UP = "warm-up: 0161 496 0000, AB123456C, password: x1y2z3w4"
HOLD_KINDS = ("personal_data", "special_category", "bulk_contacts", "credential")
PRESIDIO_MAP = {"UK_NINO": "personal_data:uk_nino", "UK_NHS": "personal_data:nhs_number",
                "CREDIT_CARD": "personal_data:payment_card", "IBAN_CODE": "personal_data:iban",
                "UK_PASSPORT": "personal_data:uk_passport", "UK_DRIVING_LICENCE": "personal_data:uk_driving_licence"}
PRESIDIO_BULK = {"EMAIL_ADDRESS": "bulk_contacts:email_address", "PHONE_NUMBER": "bulk_contacts:phone_number",
                 "UK_POSTCODE": "bulk_contacts:postal_address"}


def _holds(f) -> bool:
    """As the shipped policy (policies/icmp-email-use.yaml) holds to external recipients:
    personal_data at HIGH; special_category, bulk_contacts, credential from MEDIUM."""
    if f.kind == "personal_data":
        return f.confidence == Confidence.HIGH
    return f.kind in HOLD_KINDS and f.confidence >= Confidence.MEDIUM


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def chunks_of(item: dict) -> list[TextChunk]:
    return [TextChunk(c["where"], c["text"], c["source"]) for c in item["chunks"]]


def run_ours(items: list[dict]) -> tuple[list[set[str]], list[bool], float]:
    types, holds = [], []
    inputs = [(chunks_of(it), [it["sender"], *it["recipients"]]) for it in items]
    t0 = time.process_time()
    results = [detect(chunks, exclude=exclude) for chunks, exclude in inputs]
    elapsed = time.process_time() - t0
    for findings in results:
        types.append({f"{f.kind}:{f.type}" for f in findings if f.confidence >= Confidence.MEDIUM})
        holds.append(any(_holds(f) for f in findings))
    return types, holds, elapsed


def presidio_recognizers() -> list:
    import logging

    logging.getLogger("tldextract").setLevel(logging.CRITICAL)   # no network here: it falls back to its snapshot
    from presidio_analyzer import predefined_recognizers as pr

    recs = [pr.UkNinoRecognizer(), pr.NhsRecognizer(), pr.CreditCardRecognizer(), pr.IbanRecognizer(),
            pr.EmailRecognizer(), pr.PhoneRecognizer(supported_regions=("GB",))]
    for name in ("UkPassportRecognizer", "UkDrivingLicenceRecognizer", "UkPostcodeRecognizer"):
        if hasattr(pr, name):
            recs.append(getattr(pr, name)())
    return recs


def run_presidio(items: list[dict], recs: list | None = None) -> tuple[list[set[str]], list[bool], float]:
    recs = recs if recs is not None else presidio_recognizers()
    types, holds = [], []
    t0 = time.process_time()
    raw = []
    for it in items:
        per_chunk = []
        for c in it["chunks"]:
            results = []
            for rec in recs:
                results += rec.analyze(c["text"], rec.supported_entities, nlp_artifacts=None)
            per_chunk.append((c["text"], results))
        raw.append(per_chunk)
    elapsed = time.process_time() - t0
    for per_chunk in raw:
        found = set()
        for text, results in per_chunk:
            bulk: dict[str, set[str]] = defaultdict(set)
            for r in results:
                if r.entity_type in PRESIDIO_MAP:
                    found.add(PRESIDIO_MAP[r.entity_type])
                elif r.entity_type in PRESIDIO_BULK:
                    bulk[r.entity_type].add(text[r.start:r.end].lower())
            found |= {PRESIDIO_BULK[k] for k, v in bulk.items() if len(v) >= BULK_MIN}
        types.append(found)
        holds.append(bool(found))
    return types, holds, elapsed


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def per_type(items: list[dict], predicted: list[set[str]]) -> dict[str, tuple[int, int, int]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for it, pred in zip(items, predicted):
        gold = set(it["labels"])
        for t in gold | pred:
            key = "tp" if t in gold and t in pred else "fp" if t in pred else "fn"
            counts[t][key] += 1
    return {t: (c["tp"], c["fp"], c["fn"]) for t, c in counts.items()}


def hold_scores(items: list[dict], holds: list[bool]) -> tuple[float, float, float]:
    tp = sum(1 for it, h in zip(items, holds) if h and it["hold"])
    fp = sum(1 for it, h in zip(items, holds) if h and not it["hold"])
    fn = sum(1 for it, h in zip(items, holds) if not h and it["hold"])
    return prf(tp, fp, fn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "tests/data/pd_corpus/corpus.jsonl"))
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--show-errors", type=int, default=0, help="print up to N misclassified messages")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each side, alternating (best counts)")
    args = ap.parse_args()
    items = load(Path(args.corpus))
    size = sum(len(c["text"].encode()) for it in items for c in it["chunks"])
    detect([TextChunk("body", WARM_UP, "body")])        # as PersonalDataScanner() does at start-up
    ours_t, ours_h, ours_s = run_ours(items)
    ours = per_type(items, ours_t)
    print(f"corpus: {len(items)} messages, {size / 1e6:.2f} MB of text, "
          f"{sum(it['hold'] for it in items)} should be held")
    print(f"\n{'type':40} {'n':>4} {'prec':>6} {'recall':>6} {'F1':>6}")
    for t in sorted(ours):
        tp, fp, fn = ours[t]
        p, r, f = prf(tp, fp, fn)
        print(f"{t:40} {tp + fn:4d} {p:6.3f} {r:6.3f} {f:6.3f}")
    p, r, f = hold_scores(items, ours_h)
    print(f"\nmessage-level hold: precision {p:.3f} recall {r:.3f} F1 {f:.3f}")
    print(f"throughput (detect, CPU time of this process, one run): {size / ours_s / 1e6:.1f} MB/s ({ours_s:.2f} s)")
    if args.show_errors:
        shown = 0
        for it, pred, h in zip(items, ours_t, ours_h):
            if (set(it["labels"]) != pred or h != it["hold"]) and shown < args.show_errors:
                shown += 1
                print("\n---", it["id"], "gold", it["labels"], "pred", sorted(pred), "hold", it["hold"], h)
                print("\n".join(c["text"] for c in it["chunks"])[:1500])
    if args.no_presidio:
        return 0
    try:
        recs = presidio_recognizers()
    except ImportError as exc:
        print(f"\nPresidio comparison needs presidio-analyzer (eval-only): .venv/bin/pip install "
              f"'presidio-analyzer>=2.2' ({exc}); or run with --no-presidio", file=sys.stderr)
        return 2
    for rec in recs:                                     # the same warm-up: patterns compiled, metadata loaded
        rec.analyze(WARM_UP, rec.supported_entities, nlp_artifacts=None)
    pres_t, pres_h, pres_s = run_presidio(items, recs)
    # the machine is shared: alternate the two, best CPU time of each (the first runs count too)
    ours_times, pres_times = [ours_s], [pres_s]
    for _ in range(args.rounds - 1):
        ours_times.append(run_ours(items)[2])
        pres_times.append(run_presidio(items, recs)[2])
    ours_s, pres_s = min(ours_times), min(pres_times)
    pres = per_type(items, pres_t)
    shared = sorted(set(PRESIDIO_MAP.values()) | set(PRESIDIO_BULK.values()))
    print("\nside by side with Presidio pattern recognizers (shared types)")
    print(f"{'type':36} {'ours P':>7} {'R':>6} {'F1':>6} | {'Presidio P':>10} {'R':>6} {'F1':>6}")
    for t in shared:
        a = prf(*ours.get(t, (0, 0, 0)))
        b = prf(*pres.get(t, (0, 0, 0)))
        print(f"{t:36} {a[0]:7.3f} {a[1]:6.3f} {a[2]:6.3f} | {b[0]:10.3f} {b[1]:6.3f} {b[2]:6.3f}")
    pp, pr_, pf = hold_scores(items, pres_h)
    print(f"{'message-level hold':36} {p:7.3f} {r:6.3f} {f:6.3f} | {pp:10.3f} {pr_:6.3f} {pf:6.3f}")
    print(f"throughput (best of {args.rounds} alternating runs, CPU time): ours {size / ours_s / 1e6:.1f} MB/s, "
          f"Presidio {size / pres_s / 1e6:.2f} MB/s (x{pres_s / ours_s:.1f}); "
          f"ratio per round: {', '.join(f'{p / o:.1f}' for o, p in zip(ours_times, pres_times))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
