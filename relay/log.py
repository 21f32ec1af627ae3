"""Structured logging: one JSON object per line on stdout, console output on a TTY.

Context is bound per session and per transaction with structlog's contextvars
(``bind_contextvars``), so every event carries the session and message ids.
Nothing logged here may carry message bodies or detected personal data:
findings are logged through ``Finding.as_dict`` (already redacted) and
addresses are passed through :func:`clean` (no CR/LF or escape sequences).
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: str, limit: int = 320) -> str:
    """A string safe to log: control characters (CR, LF, ESC...) escaped, length bounded."""
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def configure(fmt: str = "auto", stream=None) -> None:
    """Set up structlog: ``json``, ``console`` or ``auto`` (console on a TTY)."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )


def decision_event(*, message_id: str, session_id: str, client: dict[str, str], mail_from: str,
                   rcpt_tos, size: int, decision=None, action: str = "", reply=None,
                   quarantine_id: str | None = None, recipients: dict[str, list[str]] | None = None,
                   timings: dict[str, float] | None = None, error: str = "") -> dict[str, object]:
    """The fields of the one ``"decision"`` event logged per message (DESIGN.md, decision log).

    ``decision`` is the pipeline's :class:`~relay.pipeline.Decision` (None when
    the pipeline failed: then ``action`` is ``"error"`` and ``error`` says what
    failed, without details that could carry message content). Addresses are
    cleaned; findings go through ``Finding.as_dict`` (already redacted); reply
    text is not logged, only its codes. Timings are in milliseconds.
    ``rules`` lists every matching rule in policy-file order (the built-in
    ``defaults.scanner_failure`` last); ``deciding_rule`` names the one a reply
    cites (``Verdict.deciding``), or is null when no enforced rule set the action.
    """
    verdict = decision.verdict if decision is not None else None
    deciding = verdict.deciding if verdict is not None else None
    all_timings = dict(decision.timings) if decision is not None else {}
    all_timings.update(timings or {})
    event: dict[str, object] = {
        "message_id": message_id,
        "session_id": session_id,
        "client": {k: clean(v, 255) for k, v in client.items() if v},
        "envelope": {"mail_from": clean(mail_from), "rcpt_tos": [clean(r) for r in rcpt_tos]},
        "size": size,
        "action": action or (str(verdict.action) if verdict is not None else "error"),
        "rules": [m.as_dict() for m in verdict.matches] if verdict is not None else [],
        "deciding_rule": deciding.rule_id if deciding is not None else None,
        "findings": [f.as_dict() for f in decision.findings] if decision is not None else [],
        "quarantine_id": quarantine_id,
        "policy_version": verdict.policy_version if verdict is not None else "",
        "timings_ms": {k: round(v * 1000, 3) for k, v in all_timings.items()},
    }
    if decision is not None:
        header_id = decision.message.header("Message-ID") if hasattr(decision.message, "header") else None
        if header_id:
            event["header_message_id"] = clean(header_id, 255)
    if recipients:
        event["recipients"] = {k: [clean(r) for r in v] for k, v in recipients.items() if v}
    if reply is not None:
        event["reply"] = f"{reply.code} {reply.status}"
    if error:
        event["error"] = error
    return event
