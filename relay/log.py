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
