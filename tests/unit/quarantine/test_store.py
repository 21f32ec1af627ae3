"""Ids, id checking and the record built from a decision (relay/quarantine/store.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from relay.errors import NotFound
from relay.quarantine.store import ID_RE, check_id, like_pattern, new_id, record_from_decision, sha256


def test_new_ids_are_well_formed_unique_and_sort_by_time():
    ids = [new_id(now=1_800_000_000 + i) for i in range(50)]
    assert all(ID_RE.fullmatch(i) for i in ids)
    assert ids == sorted(ids)
    assert len({new_id() for _ in range(2000)}) == 2000


def test_check_id_accepts_its_own_ids():
    qid = new_id()
    assert check_id(qid) == qid


@pytest.mark.parametrize("bad", [
    "", "../../etc/passwd", "'; DROP TABLE held; --", "q-" + "0" * 10_000, "q-" + "0" * 25, "q-" + "i" * 26,
    "Q-" + "0" * 26, "q-" + "0" * 26 + "\n", "\x00", None, 7, b"q-" + b"0" * 26,
])
def test_check_id_refuses_everything_else_with_a_short_safe_message(bad):
    with pytest.raises(NotFound, match="not a quarantine id") as info:
        check_id(bad)
    text = str(info.value)
    assert len(text) < 200
    assert "\n" not in text and "\x00" not in text


@given(hs.text(max_size=60))
def test_check_id_never_accepts_what_the_regex_refuses(text):
    if ID_RE.fullmatch(text):
        assert check_id(text) == text
    else:
        with pytest.raises(NotFound):
            check_id(text)


def test_like_pattern_escapes_wildcards():
    assert like_pattern("A%b_c\\") == "%a\\%b\\_c\\\\%"


def test_record_from_decision(make_decision, make_message):
    raw = make_message(subject="Hello there")
    decision = make_decision(raw, rcpt_tos=("a@x.example", "b@y.example"), notify=True)
    rec = record_from_decision(decision, raw, None)
    assert ID_RE.fullmatch(rec.id)
    assert rec.recipients == ("a@x.example", "b@y.example")
    assert rec.sha256 == sha256(raw) and rec.size == len(raw)
    assert rec.subject == "Hello there" and rec.action == "hold" and rec.policy_version == "test-1"
    assert rec.rules[0] == {"id": "personal-data-external", "clause": "5.2", "action": "hold",
                            "reason": "Personal data to an external recipient"}
    assert record_from_decision(decision, raw, ["b@y.example"]).recipients == ("b@y.example",)
