"""relay.scanners.text: own words, disclaimers, lexicon patterns, whole-word matching, masking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.findings import Confidence, Finding
from relay.scanners.data import expand, parse_lexicon
from relay.scanners.text import PhraseMatcher, literal_database, literal_ends, flatten, fold, mask, merge_same_place, own_text, strip_disclaimers


def test_quoted_lines_are_dropped_one_by_one():
    text = "> you said this\nMy answer.\n> and this\nMore of mine."
    assert own_text(text) == "My answer.\nMore of mine."


def test_top_posted_reply_cuts_at_attribution():
    text = "Sounds good.\n\nOn Tue, 3 Mar 2026 at 10:00, Bob <bob@x.org> wrote:\nquoted original\nmore\n"
    assert own_text(text).strip() == "Sounds good."


def test_bottom_posted_reply_keeps_text_after_quote():
    text = "On Tue, 3 Mar 2026, Bob wrote:\n> question?\nMy answer below the quote."
    assert own_text(text).strip() == "My answer below the quote."


def test_outlook_header_block_is_a_quote():
    text = ("Reply on top.\n\nFrom: Bob Smith <bob@x.org>\nSent: 03 March 2026 10:00\nTo: Alice\n"
            "Subject: stuff\n\nold text")
    assert own_text(text).strip() == "Reply on top."


def test_from_line_in_prose_is_not_a_quote():
    text = "From: the finance team we heard nothing.\nThe rest stays."
    assert "The rest stays." in own_text(text)


def test_original_message_banner_and_html_inline_attribution():
    assert own_text("Mine\n-----Original Message-----\nTheirs").strip() == "Mine"
    html_like = "Thanks, agreed.  On Tue, 3 Mar 2026 at 10:00 Bob <b@x.org> wrote:  their old words"
    assert own_text(html_like).strip() == "Thanks, agreed."


def test_signature_is_dropped():
    assert own_text("Body text\n-- \nAlice\n+44 20 7946 0000").strip() == "Body text"


def test_forwarded_message_kept_only_on_request():
    text = "FYI\n\n---------- Forwarded message ---------\nFrom: Bob\nSECRET plans"
    assert "SECRET" not in own_text(text)
    assert "SECRET" in own_text(text, keep_forwarded=True)


def test_disclaimer_paragraph_is_removed_and_prose_kept():
    text = ("Please keep this between the board.\n\n"
            "This email and any attachments are confidential and intended solely for the use of the "
            "individual to whom they are addressed. If you have received this email in error please "
            "notify the sender.\n\nBye")
    out = strip_disclaimers(text)
    assert "intended solely" not in out
    assert out.startswith("Please keep this") and out.endswith("Bye")


def test_one_weak_cue_is_not_a_disclaimer():
    para = "The confidential report for the audit committee is attached, please read it before Monday."
    assert strip_disclaimers(para) == para


def test_ordinary_paragraph_with_if_you_received_survives():
    para = "If you have received the invoice already, please pay it by Friday as agreed with finance."
    assert strip_disclaimers(para) == para


def test_expand_alternations_optional_groups_and_inflections():
    assert expand("we (accept|accepted) your (offer|quote)") == [
        "we accept your offer", "we accept your quote", "we accepted your offer", "we accepted your quote"]
    assert expand("a (big |)deal") == ["a big deal", "a deal"]
    forms = expand("idiot+")
    assert {"idiot", "idiots"} <= set(forms)
    assert {"bully", "bullies", "bullied", "bullying"} <= set(expand("bully+"))


def test_parse_lexicon_sections_and_comments():
    lex = parse_lexicon("# header\n[high]\nfoo (bar|baz)  # note\n\n[LOW]\nQux\n")
    assert lex == {"high": ["foo bar", "foo baz"], "low": ["qux"]}


@pytest.mark.parametrize("text", ["Scunthorpe", "assessment", "classic", "therapist", "passage", "bass"])
def test_whole_words_only_scunthorpe(text):
    matcher = PhraseMatcher({"x": ["ass", "cunt", "rapist"]})
    assert matcher.find(fold(flatten(text))) == []


def test_match_at_edges_and_punctuation():
    matcher = PhraseMatcher({"x": ["idiot"]})
    hits = matcher.find(fold(flatten("Idiot! you (idiot), idiot")))
    assert [(m.start, m.end) for m in hits] == [(0, 5), (12, 17), (20, 25)]


def test_longest_match_wins_and_no_overlap():
    matcher = PhraseMatcher({"a": ["purchase"], "b": ["purchase order"]})
    hits = matcher.find("a purchase order here")
    assert [(m.phrase, m.label) for m in hits] == [("purchase order", "b")]


_WORDS = ["ass", "class", "café", "naïve idea", "straße", "idiot", "idiots", "per annum", "x", "ß", "#1", "a-b"]


def _reference_find(phrases: dict[str, str], low: str) -> list[tuple[int, int, str, str]]:
    """Every occurrence by str.find, whole words only, longest of overlapping ones: the spec."""
    def word(ch: str) -> bool:
        return ch.isalnum() or ch == "_"
    found = []
    for phrase, label in phrases.items():
        at = low.find(phrase)
        while at != -1:
            end = at + len(phrase)
            if not ((at > 0 and word(low[at - 1]) and word(phrase[0]))
                    or (end < len(low) and word(low[end]) and word(phrase[-1]))):
                found.append((at, end, phrase, label))
            at = low.find(phrase, at + 1)
    found.sort(key=lambda m: (m[0], m[0] - m[1]))
    out, last_end = [], -1
    for m in found:
        if m[0] >= last_end:
            out.append(m)
            last_end = m[1]
    return out


@given(st.lists(st.sampled_from(_WORDS + [" ", ", ", "é", "\u0130", "日本", "_", "9", "\U0001f600"]), max_size=40),
       st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6, unique=True))
@settings(max_examples=300, deadline=None)
def test_matches_equal_a_plain_search_on_any_text(pieces, phrases):
    low = fold("".join(pieces))
    labelled = {p: f"label{i % 2}" for i, p in enumerate(phrases)}
    matcher = PhraseMatcher({"label0": [p for p, lab in labelled.items() if lab == "label0"],
                             "label1": [p for p, lab in labelled.items() if lab == "label1"]})
    assert [(m.start, m.end, m.phrase, m.label) for m in matcher.find(low)] == _reference_find(labelled, low)


def test_phrases_match_across_line_breaks_and_curly_quotes():
    matcher = PhraseMatcher({"x": ["you're useless"]})
    assert matcher.find(fold(flatten("You\u2019re\n   useless"))) != []


def test_fold_keeps_length():
    text = "\u0130stanbul IDIOT"
    assert len(fold(text)) == len(text)
    assert fold(text).endswith("idiot")


def test_mask():
    assert mask("bastard") == "b******"
    assert mask("i will kill you") == "i w*** k*** y**"


def test_merge_same_place_keeps_the_strongest():
    a = Finding("abusive_language", "abusive", Confidence.LOW, 1, "body")
    b = Finding("abusive_language", "abusive", Confidence.HIGH, 2, "body")
    c = Finding("abusive_language", "abusive", Confidence.HIGH, 1, 'part 2 "a.txt"')
    assert sorted(merge_same_place([a, b, c]), key=lambda f: f.where) == [b, c]


def _ctx(body: str):
    from relay.envelope import Envelope
    from relay.extract import extract
    from relay.message import parse
    from relay.organisation import Organisation
    from relay.scanners import ScanContext

    raw = f"From: a@example.ac.uk\r\nTo: b@partner.org\r\nSubject: s\r\n\r\n{body}\r\n".encode()
    message = parse(raw)
    return ScanContext(message, Envelope("a@example.ac.uk", ("b@partner.org",)), Organisation(), extract(message))


def test_own_chunks_prepared_once_and_shared_between_threads():
    from concurrent.futures import ThreadPoolExecutor

    from relay.scanners.text import own_chunks

    ctx = _ctx("Mine.\r\n> theirs\r\n" * 5000)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(lambda: [c for c in own_chunks(ctx) if c.source == "body"]) for _ in range(4)]
        results = [f.result(timeout=60) for f in futures]
    first = results[0][0]
    assert all(r[0] is first for r in results)
    assert "theirs" not in first.flat and first.flat.startswith("Mine. Mine.")
    # with no forwarded message in the text, the forwarded-keeping view is the same object
    assert next(c for c in own_chunks(ctx, keep_forwarded=True) if c.source == "body") is first
    fwd = _ctx("Mine.\r\n---------- Forwarded message ---------\r\nTheirs.")
    plain = next(c for c in own_chunks(fwd) if c.source == "body")
    kept = next(c for c in own_chunks(fwd, keep_forwarded=True) if c.source == "body")
    assert (plain.flat, kept.flat) == ("Mine.", "Mine. Theirs.")


def test_own_chunks_views_of_equal_text_in_different_messages_are_independent():
    from relay.scanners.text import own_chunks

    a = [c.flat for c in own_chunks(_ctx("You moron."))]
    b = [c.flat for c in own_chunks(_ctx("Kind regards."))]
    assert "You moron." in a and "Kind regards." in b


def test_disclaimer_glued_to_the_senders_lines_keeps_those_lines():
    text = ("Hi Sam,\nthe CONFIDENTIAL report is attached, you idiot.\nThis email and any attachments are "
            "confidential and intended solely for the use of the addressee.\nIf you have received it in error "
            "please notify the sender.")
    out = strip_disclaimers(text)
    assert out == "Hi Sam,\nthe CONFIDENTIAL report is attached, you idiot."


def test_signature_delimiter_cannot_hide_a_long_text():
    hidden = "Hi\n-- \n" + "\n".join(f"line {i} of the real message" for i in range(30))
    assert "line 29" in own_text(hidden)


@pytest.mark.parametrize("name", ["abusive.txt", "intimidating.txt", "disparaging.txt", "contracts.txt",
                                  "confidential.txt", "disclaimers.txt"])
def test_lexicon_files_are_documented_and_well_formed(name):
    from importlib import resources

    from relay.scanners.data import load_lexicon

    raw = resources.files("relay.scanners.data").joinpath(name).read_text(encoding="utf-8")
    header = raw.split("\n[", 1)[0]
    assert header.startswith("#")
    assert "come from" in header.lower() and "chosen" in header.lower()
    lexicon = load_lexicon(name)
    assert lexicon and all(lexicon.values())
    for phrases in lexicon.values():
        for phrase in phrases:
            assert " '" not in phrase and "(" not in phrase and "|" not in phrase, phrase
            assert phrase == phrase.strip() and "  " not in phrase


_PIECES = st.sampled_from(["> ", "On Tue, Bob wrote:", "\n", "\r\n", "-- ", "From: x", "Sent: y", "To: z",
                           "confidential", "idiot", "\u0130", "\u2019", "£1,250", "(", ")", " ", "intended solely for",
                           "_" * 12, "---------- Forwarded message ---------", "wrote:"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=20)), max_size=60))
def test_own_text_and_matching_never_fail(pieces):
    from relay.scanners.language import _MATCHER

    text = "".join(pieces)
    own = own_text(text)
    low = fold(flatten(own))
    for m in _MATCHER.find(low):
        assert 0 <= m.start < m.end <= len(low) and low[m.start:m.end] == m.phrase


def test_many_attribution_lines_stay_linear():
    text = "On Tue, 3 Mar 2026, Bob wrote:\n> quoted\n" * 20000 + "My answer."
    assert own_text(text).strip() == "My answer."


def test_disclaimer_at_the_end_of_a_long_text():
    body = "Our own words about the project plan.\n\n" * 400
    text = body + ("This email and any attachments are confidential and intended solely for the use of the "
                   "addressee. If you are not the intended recipient please notify the sender.")
    out = strip_disclaimers(text)
    assert "intended solely" not in out and out.startswith(body[:200]) and len(out) >= len(body) - 2


@pytest.mark.parametrize("attribution", [
    "On 3 Mar 2026, at 10:00, Bob <bob@x.org> wrote:",
    "Am 03.03.2026 um 10:00 schrieb Bob <bob@x.org>:",
    "Le 3 mars 2026 à 10:00, Bob a écrit :",
    "Bob Smith <bob@x.org> wrote:",
])
def test_attribution_forms(attribution):
    assert own_text(f"Mine.\n\n{attribution}\ntheir old words\n").strip() == "Mine."


@given(st.text(alphabet="£$€us gbpeur\u0130\u00e9\U0001f600x1", max_size=60))
@settings(max_examples=300, deadline=None)
def test_literal_ends_are_the_str_offsets_of_every_occurrence(text):
    import threading

    marks = ("£", "$", "€", "us$", "gbp", "eur", "\u00e9x")
    db = literal_database(marks)
    expected = sorted((i + len(m), n) for n, m in enumerate(marks)
                      for i in range(len(text)) if text.startswith(m, i))
    assert literal_ends(db, threading.local(), text) == expected
