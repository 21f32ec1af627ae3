"""The scanner as the pipeline runs it, and the labelled corpus as a whole."""

import asyncio
import json
from pathlib import Path

from relay.envelope import Envelope
from relay.extract import TextChunk, extract
from relay.findings import KINDS, PERSONAL_DATA_TYPES, TYPES, Confidence
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.personal_data import PersonalDataScanner, detect

CORPUS = Path(__file__).resolve().parents[4] / "tests/data/pd_corpus/corpus.jsonl"


def ctx_for(raw: bytes, detectors=()) -> ScanContext:
    msg = parse(raw)
    env = Envelope("alice@example.ac.uk", ("bob@example.org",))
    return ScanContext(msg, env, Organisation(), extract(msg), tuple(detectors))


def test_scan_through_the_pipeline_contract(make_message):
    body = ("Hi Bob,\n\nPlease pay Jo Bloggs: card 4539 1488 0343 6467, NI number AB 12 34 56 C.\n"
            "Her NHS number is 485 777 3450.\n\nKind regards,\nAlice\nTel: 0161 496 0000\n")
    raw = make_message(body=body, attachments=[("staff.csv", b"Name,NI Number\nJo,CE998877D\n", "text/csv")])
    scanner = PersonalDataScanner()
    assert scanner.name == "personal_data"
    findings = asyncio.run(scanner.scan(ctx_for(raw)))
    got = {(f.kind, f.type, f.where) for f in findings}
    assert ("personal_data", "payment_card", "body") in got
    assert ("personal_data", "uk_nino", "body") in got
    assert any(w.endswith('"staff.csv"') for k, t, w in got if t == "uk_nino")
    assert not any(f.type == "phone_number" for f in findings)       # the sender's signature


def test_findings_use_registered_names_and_one_per_band():
    text = ("card 4539 1488 0343 6467, card 4539148803436467, order 4716 2100 0000 0009\n"
            "password: hunter2! Mr Patel has epilepsy.")
    findings = detect([TextChunk("body", text, "body")])
    keys = [(f.kind, f.type, f.where, f.confidence) for f in findings]
    assert len(keys) == len(set(keys))
    for f in findings:
        assert f.kind in KINDS
        assert f.type in TYPES[f.kind] or f.type.startswith("custom:")
        assert isinstance(f.confidence, Confidence)
    card = [f for f in findings if f.type == "payment_card" and f.confidence == Confidence.HIGH]
    assert card[0].count == 1                                         # same number twice, counted once


def test_protected_flag_is_carried():
    (f,) = detect([TextChunk('part 2 "x.docx"', "NI number AB123456C", "attachment", protected=True)])
    assert f.protected and f.where == 'part 2 "x.docx"'


def _corpus():
    with CORPUS.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _run(item):
    chunks = [TextChunk(c["where"], c["text"], c["source"]) for c in item["chunks"]]
    return detect(chunks, exclude=[item["sender"], *item["recipients"]])


def test_no_planted_value_in_any_finding_field_over_the_whole_corpus():
    leaks = []
    for item in _corpus():
        fields = [" ".join(str(x) for x in f.as_dict().values()) for f in _run(item)]
        blob = "\n".join(fields)
        squashed = blob.replace(" ", "").replace("-", "")
        for value in item["values"]:
            compact = value.replace(" ", "").replace("-", "")
            if value in blob or (len(compact) >= 6 and compact in squashed):
                leaks.append((item["id"], value))
    assert not leaks, leaks[:5]


def test_corpus_quality_floor():
    """Regression floor on the labelled corpus (bench/eval_pd.py prints the full table)."""
    tp = fp = fn = 0
    for item in _corpus():
        hold = any(f.confidence == Confidence.HIGH or (f.kind != "personal_data" and f.confidence >= Confidence.MEDIUM)
                   for f in _run(item))
        tp += hold and item["hold"]
        fp += hold and not item["hold"]
        fn += (not hold) and item["hold"]
    assert tp / (tp + fp) >= 0.97 and tp / (tp + fn) >= 0.97


def test_personal_data_types_registry_covers_what_we_emit():
    assert {"uk_nino", "nhs_number", "payment_card", "iban", "uk_bank_account", "uk_passport",
            "uk_driving_licence", "uk_utr", "date_of_birth", "phone_number", "postal_address"} <= set(PERSONAL_DATA_TYPES)


def test_plain_and_html_twins_report_once():
    text = "NI number AB123456C"
    findings = detect([TextChunk("body", text, "body"), TextChunk("body", text + "\n", "body")])
    assert [(f.type, f.count) for f in findings] == [("uk_nino", 1)]


def test_no_break_spaces_and_unicode_dashes():
    text = "card 4539\u00a01488\u00a00343\u00a06467 and NI AB\u202f12\u202f34\u202f56\u202fC, sort code 20\u201345\u201377 71234568"
    got = {f.type for f in detect([TextChunk("body", text, "body")]) if f.confidence == Confidence.HIGH}
    assert {"payment_card", "uk_nino", "uk_bank_account"} <= got


def _scan_thread(raw: bytes) -> tuple[bool, list]:
    """(ran on the event loop's thread, findings) for one ``scan`` of ``raw``."""
    import threading

    scanner = PersonalDataScanner()
    seen = []
    inner = scanner.scan_sync

    def recording(ctx):
        seen.append(threading.get_ident())
        return inner(ctx)

    scanner.scan_sync = recording

    async def run():
        return threading.get_ident(), await scanner.scan(ctx_for(raw))

    loop_thread, findings = asyncio.run(run())
    assert len(seen) == 1
    return seen[0] == loop_thread, findings


def test_small_message_scanned_inline_large_one_off_the_loop(make_message):
    # a thread hop costs more than the scan of a small message; a large one must not block the loop
    small = "Hi Bob,\n\nNI number AB 12 34 56 C.\n"
    inline, findings = _scan_thread(make_message(body=small))
    assert inline and any(f.type == "uk_nino" for f in findings)
    large = small + "Nothing else to report today, thanks.\n" * 2000      # about 76 KB of text
    inline, findings = _scan_thread(make_message(body=large))
    assert not inline and any(f.type == "uk_nino" for f in findings)
