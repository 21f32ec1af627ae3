"""Argument parsing and the table of ``relay quarantine`` (relay/commands/quarantine.py)."""

from __future__ import annotations

import datetime as dt

import click
import pytest

from relay.commands.quarantine import parse_age, parse_when, table
from relay.quarantine.store import HeldSummary

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("text, expect", [
    ("2d", NOW - dt.timedelta(days=2)), ("12h", NOW - dt.timedelta(hours=12)), ("30m", NOW - dt.timedelta(minutes=30)),
    ("1w", NOW - dt.timedelta(days=7)), ("2026-11-01", dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)),
    ("2026-11-01T10:00:00+01:00", dt.datetime(2026, 11, 1, 9, tzinfo=dt.timezone.utc)),
])
def test_parse_when(text, expect):
    assert parse_when(text, NOW) == expect


@pytest.mark.parametrize("text", ["yesterday", "2 days", "-2d", "", "2026-13-01"])
def test_parse_when_refuses(text):
    with pytest.raises(click.BadParameter):
        parse_when(text, NOW)


def test_parse_age():
    assert parse_age("30d") == dt.timedelta(days=30)
    with pytest.raises(click.BadParameter):
        parse_age("2026-01-01")


def test_table_escapes_and_masks():
    row = HeldSummary("q-" + "0" * 26, NOW, "held", "a@example.ac.uk", ("b@x.example", "c@x.example"), "hold",
                      ({"id": "pd"},), 2048, "0" * 64, "NI AB123456C \x1b[31m")
    out = table([row])
    assert "b@x.example +1" in out and "2 KB" in out and "AB123456C" not in out and "\x1b" not in out
    assert table([]) == "no messages"


@pytest.mark.parametrize("text", ["99999999999d", "999999999w", "9" * 30 + "h"])
def test_ages_too_large_for_a_date_are_a_usage_error_not_a_traceback(text):
    with pytest.raises(click.BadParameter, match="age too large"):
        parse_when(text)
    with pytest.raises(click.BadParameter, match="age too large"):
        parse_age(text)
