"""``relay quarantine``: review held messages (list, show, release, delete, export, purge, check).

Every command reads the settings (``--config`` / ``RELAY_*``; the store is
``RELAY_QUARANTINE``) and logs reviewer actions as JSON events on stderr
(``quarantine.release``, ``.delete``, ``.reveal``, ``.export``, ``.purge``),
so stdout carries only the output (a table, ``--json``, or exported bytes).

Exit status: 0 done; 1 bad settings; 2 bad arguments; 3 no such message (or a
malformed id); 4 already released, deleted or being released, or its release
is uncertain (``release --force`` after checking the next hop); 5 the store is
unavailable; 6 the next hop refused or was unreachable (the message stays held),
or the next hop's answer to the data was lost (now ``release_uncertain``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from relay import log as relay_log
from relay.cli import config_option, load_settings
from relay.errors import AlreadyHandled, NotFound, StoreError, StoreUnavailable, UpstreamError, UpstreamRejected
from relay.quarantine import lease_for, open_store, preview
from relay.quarantine import release as actions
from relay.quarantine.store import STATUSES, Filter, HeldMessage, HeldSummary, Store

T = TypeVar("T")

EXIT_NOT_FOUND, EXIT_ALREADY, EXIT_STORE, EXIT_UPSTREAM = 3, 4, 5, 6

_RELATIVE = re.compile(r"\s*(\d+)\s*(w|d|h|m|s)\s*", re.IGNORECASE)
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


class Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_when(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``2d`` / ``12h`` / ``30m`` / ``1w`` ago, or an ISO date or date-time (UTC when no zone)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if m := _RELATIVE.fullmatch(text):
        try:
            return now - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])
        except OverflowError:
            raise click.BadParameter(f"{text!r}: age too large") from None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected an ISO date (2026-11-01), a date-time, or an age such as 2d, 12h, 30m") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def parse_age(text: str) -> dt.timedelta:
    if m := _RELATIVE.fullmatch(text):
        try:
            age = dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])
            dt.datetime.now(dt.timezone.utc) - age   # purge subtracts it from now: must stay a date
        except OverflowError:
            raise click.BadParameter(f"{text!r}: age too large") from None
        return age
    raise click.BadParameter(f"{text!r}: expected an age such as 30d, 12h or 2w")


def _run(config_path: str | None, work: Callable[[Any, Store], Awaitable[T]]) -> T:
    settings = load_settings(config_path)
    relay_log.configure(settings.log_format, sys.stderr)

    async def main() -> T:
        store = open_store(settings.quarantine, lease=lease_for(settings))
        try:
            return await work(settings, store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except NotFound as exc:
        raise Failure(str(exc), EXIT_NOT_FOUND) from None
    except AlreadyHandled as exc:
        raise Failure(str(exc), EXIT_ALREADY) from None
    except StoreUnavailable as exc:
        raise Failure(f"quarantine store unavailable: {exc}", EXIT_STORE) from None
    except StoreError as exc:
        raise Failure(str(exc), EXIT_STORE) from None


reviewer_option = click.option("--reviewer", default=actions.default_reviewer, show_default="$USER",
                               help="Who is acting (recorded in the history and the log).")
note_option = click.option("--note", default="", help="A note for the history.")
json_option = click.option("--json", "as_json", is_flag=True, help="JSON for scripts instead of text for people.")


@click.group("quarantine")
def quarantine() -> None:
    """Review held messages: list, show, release, delete, export, purge.

    The store is the `quarantine` setting (RELAY_QUARANTINE). Reviewer actions
    are logged as events on stderr (JSON unless stderr is a terminal and
    log_format is auto); stdout carries only the output.

    \b
    Exit status: 0 done; 1 bad settings; 2 bad arguments;
    3 no such message or a malformed id; 4 already released, deleted,
    being released, or its release is uncertain (see release --force);
    5 store unavailable (or `check` found problems); 6 the next hop
    refused or was unreachable (the message stays held), or its answer
    to the data was lost (the message is now release_uncertain).
    """


@quarantine.command("list")
@config_option
@click.option("--rule", help="Only messages matched by this rule id.")
@click.option("--sender", help="Only envelope senders containing this text (case-insensitive).")
@click.option("--recipient", help="Only messages held for a recipient containing this text.")
@click.option("--since", help="Held at or after: ISO date/time, or an age such as 2d, 12h.")
@click.option("--until", help="Held before: ISO date/time, or an age such as 2d, 12h.")
@click.option("--status", type=click.Choice(STATUSES), help="Only messages in this state (default: all).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@json_option
def list_(config_path, rule, sender, recipient, since, until, status, limit, as_json) -> None:
    """List held messages, newest first."""
    flt = Filter(rule=rule, sender=sender, recipient=recipient, status=status, limit=limit,
                 since=parse_when(since) if since else None, until=parse_when(until) if until else None)
    rows = _run(config_path, lambda settings, store: store.list(flt))
    if as_json:
        click.echo(json.dumps([summary_json(r) for r in rows], indent=2, ensure_ascii=False))
    else:
        click.echo(table(rows))


def summary_json(row: HeldSummary) -> dict[str, Any]:
    return {
        "id": row.id, "held_at": row.held_at.isoformat(), "status": row.status, "mail_from": row.mail_from,
        "recipients": list(row.recipients), "action": row.action, "rules": [dict(r) for r in row.rules],
        "size": row.size, "sha256": row.sha256, "subject_masked": preview.mask(row.subject),
    }


def table(rows: list[HeldSummary]) -> str:
    if not rows:
        return "no messages"
    head = ("ID", "HELD (UTC)", "STATUS", "FROM", "TO", "RULES", "SIZE", "SUBJECT (masked)")
    lines = [head]
    for r in rows:
        to = r.recipients[0] if r.recipients else ""
        if len(r.recipients) > 1:
            to += f" +{len(r.recipients) - 1}"
        lines.append((r.id, r.held_at.strftime("%Y-%m-%d %H:%M"), r.status, _cut(r.mail_from or "<>", 32),
                      _cut(to, 32), _cut(",".join(r.rule_ids), 30), _bytes(r.size),
                      _cut(preview.mask(r.subject), 40)))
    lines = [tuple(preview.safe(c).replace("\n", " ") for c in line) for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in lines)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _bytes(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.0f} KB" if n < 1024**2 else f"{n / 1024**2:.1f} MB"


@quarantine.command("show")
@config_option
@click.argument("qid", metavar="ID")
@click.option("--reveal", is_flag=True, help="Show personal data unmasked (recorded and logged as quarantine.reveal).")
@reviewer_option
@json_option
def show(config_path, qid, reveal, reviewer, as_json) -> None:
    """Headers, findings, reasons, history and a text preview of one held message."""

    async def work(settings, store: Store):
        if reveal:
            return await actions.reveal(store, qid, reviewer)
        msg = await store.get(qid)
        try:
            return msg, await store.raw(qid)
        except NotFound:
            return msg, None

    msg, raw = _run(config_path, work)
    text = preview.render(raw, reveal=reveal) if raw is not None else "(the message bytes were deleted)"
    if as_json:
        click.echo(json.dumps({**msg.as_dict(), "subject_masked": preview.mask(msg.subject), "preview": text},
                              indent=2, ensure_ascii=False))
    else:
        click.echo(describe(msg) + "\n" + text)


def describe(msg: HeldMessage) -> str:
    s = preview.safe
    lines = [
        f"ID:        {msg.id}",
        f"Status:    {msg.status}",
        f"Held at:   {msg.held_at.isoformat(timespec='seconds')}",
        f"From:      {s(msg.mail_from or '<>')}",
        f"To:        {s(', '.join(msg.recipients))}",
        f"Client:    {s(msg.client_address)} name={s(msg.client_name or '-')} helo={s(msg.helo or '-')}",
        f"Size:      {msg.size} bytes, SHA-256 {msg.sha256}",
        f"Verdict:   {msg.action} (policy {s(msg.policy_version or '-')})",
        "Rules:",
        *(f"  - {s(str(r.get('id')))} [clause {s(str(r.get('clause')))}] {s(str(r.get('action')))}:"
          f" {s(str(r.get('reason')))}{' (monitor)' if r.get('monitor') else ''}" for r in msg.rules),
        "Findings:",
        *(f"  - {s(str(f.get('kind')))}/{s(str(f.get('type')))} x{f.get('count')} ({f.get('confidence')})"
          f" in {s(str(f.get('where')))}{': ' + s(str(f.get('evidence'))) if f.get('evidence') else ''}"
          for f in msg.findings),
        "History:",
        *(f"  {h.at.isoformat(timespec='seconds')}  {s(h.actor)}  {h.action}{'  ' + s(h.note) if h.note else ''}"
          for h in msg.history),
    ]
    return "\n".join(lines)


@quarantine.command("release")
@config_option
@click.argument("qid", metavar="ID")
@reviewer_option
@note_option
@click.option("--force", is_flag=True,
              help="Also send a message whose earlier release is uncertain (release_uncertain): the next hop "
                   "may already have it, so a duplicate is possible. Logged as quarantine.release_forced.")
def release_(config_path, qid, reviewer, note, force) -> None:
    """Send the original message on to the next hop, never twice on its own.

    Two reviewers releasing together get one delivery; the other is told it
    is being released. If the next hop refuses or is down before the data,
    the message stays held and the refusal is in its history. If the next
    hop may have it but we cannot know (its answer to the data was lost, or
    a release process died and its claim outlived the lease of
    10 x upstream_timeout), the message becomes release_uncertain and a
    plain release refuses it (exit 4): check the next hop's log, then
    delete it, or release it with --force (a duplicate is possible).
    """

    async def work(settings, store: Store):
        try:
            return await actions.release(store, settings, qid, reviewer, note, force=force)
        except actions.ReleaseUncertain as exc:
            raise Failure(f"{qid}: {exc}. It is now release_uncertain: check the next hop's log for it; if it"
                          f" is not there, `relay quarantine release --force {qid}` sends it again",
                          EXIT_UPSTREAM) from None
        except UpstreamRejected as exc:
            raise Failure(f"the next hop refused {qid}: {exc}; the message stays held", EXIT_UPSTREAM) from None
        except UpstreamError as exc:
            raise Failure(f"the next hop is unavailable ({exc}); {qid} stays held, try again later",
                          EXIT_UPSTREAM) from None

    done = _run(config_path, work)
    n = len(done.message.recipients)
    click.echo(f"released {done.message.id} to {n} recipient{'s' if n != 1 else ''}; next hop: {done.reply}")


@quarantine.command("delete")
@config_option
@click.argument("qid", metavar="ID")
@reviewer_option
@note_option
def delete(config_path, qid, reviewer, note) -> None:
    """Delete a held message: its bytes go, its record and hash stay until purged."""
    msg = _run(config_path, lambda settings, store: actions.delete(store, qid, reviewer, note))
    click.echo(f"deleted {msg.id}")


@quarantine.command("export")
@config_option
@click.argument("qid", metavar="ID")
@click.option("-o", "--output", type=click.File("wb"), default="-", help="File to write (default: stdout).")
@reviewer_option
def export(config_path, qid, output, reviewer) -> None:
    """Write the original message, byte for byte (``export ID > msg.eml``)."""
    if getattr(output, "isatty", lambda: False)():
        raise click.UsageError("refusing to write a raw message to a terminal: redirect to a file or use --output")
    _msg, raw = _run(config_path, lambda settings, store: actions.export(store, qid, reviewer))
    output.write(raw)
    output.flush()


@quarantine.command("purge")
@config_option
@click.option("--older-than", "older_than", required=True, help="Age past which messages are removed, e.g. 30d.")
@reviewer_option
@json_option
def purge(config_path, older_than, reviewer, as_json) -> None:
    """Remove messages held longer ago than --older-than, whatever their state, with their bytes."""
    cutoff = dt.datetime.now(dt.timezone.utc) - parse_age(older_than)
    gone = _run(config_path, lambda settings, store: actions.purge(store, cutoff, reviewer))
    if as_json:
        click.echo(json.dumps({"purged": [{"id": g.id, "sha256": g.sha256, "status": g.status} for g in gone]}))
    else:
        click.echo(f"purged {len(gone)} message{'s' if len(gone) != 1 else ''} held before {cutoff.isoformat(timespec='seconds')}")


@quarantine.command("check")
@config_option
def check(config_path) -> None:
    """Check every stored message against its SHA-256 (exit 5 on any problem)."""
    problems = _run(config_path, lambda settings, store: store.check())
    for problem in problems:
        click.echo(problem)
    if problems:
        raise Failure(f"{len(problems)} problem(s) in the quarantine store", EXIT_STORE)
    click.echo("ok")
