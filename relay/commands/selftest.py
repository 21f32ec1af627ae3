"""``relay selftest``: check settings, TLS, policy, clamd, the quarantine store, the next hop and DKIM keys.

Prints one ``PASS``/``FAIL``/``SKIP`` line per check with the reason (or, with
``--json``, one JSON object) and exits 0 only if no check failed. Safe to run
next to a serving relay: it sends no mail and leaves nothing in the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import click

from relay.cli import config_option
from relay.config import Settings
from relay.errors import ConfigError


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object for scripts instead of lines for people.")
def selftest(config_path: str | None, as_json: bool) -> None:
    """Check every part the relay needs; exit 0 only if all pass.

    \b
    settings    loaded and validated (file and RELAY_* environment)
    tls         the STARTTLS certificate and key load (if configured)
    policy      loads; its name, version and rule count
    clamd       each address: PING, VERSION, and the EICAR test string must be FOUND
    quarantine  the store opens; a probe row is written, read and deleted (rolled back)
    next hop    connects, EHLO, capabilities, STARTTLS as configured, QUIT (no mail)
    dkim        each signing key loads; the DNS TXT record to publish
    """
    from relay import log as relay_log
    from relay import selftest as checks

    relay_log.configure("console", stream=sys.stderr)     # warnings to stderr: stdout is the report
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)   # its retries would repeat the quarantine FAIL
    try:
        settings = Settings.load(config_path)
    except ConfigError as exc:
        results = [checks.CheckResult("settings", checks.FAIL, str(exc))]
    else:
        origin = f"from {config_path}" if config_path else "from defaults"
        first = checks.CheckResult("settings", checks.PASS, f"loaded {origin} and RELAY_* environment; valid")
        results = [first, *asyncio.run(checks.run(settings))]
    failed = [r for r in results if r.failed]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [r.as_dict() for r in results]}, indent=2))
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            click.echo(f"{r.status} {r.name:<{width}}  {r.detail}")
        passed = sum(r.status == checks.PASS for r in results)
        click.echo(f"selftest: {passed} passed, {len(failed)} failed, "
                   f"{sum(r.status == checks.SKIP for r in results)} skipped")
    sys.exit(1 if failed else 0)
