"""``relay milter``: run the milter front in the foreground (Postfix ``smtpd_milters``, Sendmail
``INPUT_MAIL_FILTER``: ``deploy/postfix/milter.md``, ``deploy/sendmail/README.md``).

Same settings as ``relay serve`` (``--config`` / ``RELAY_*``); it listens on
``milter_listen`` (``inet:host:port`` or ``unix:/path``). The pipeline is
built the same way (``serving.load_policy`` + ``serving.build_pipeline``); held
mail goes to the same quarantine store (``quarantine``), released with
``relay quarantine release ID`` to ``upstream``; DKIM keys from the same
settings. SIGTERM (and SIGINT) stop accepting, let messages being decided
finish within ``shutdown_grace`` and exit 0; SIGHUP reloads the policy.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from relay.cli import config_option, load_settings
from relay.errors import ConfigError, PolicyError, StoreError


@click.command()
@config_option
def milter(config_path: str | None) -> None:
    """Run the milter front for Postfix or Sendmail (SIGTERM to stop gracefully, SIGHUP to reload the policy)."""
    settings = load_settings(config_path)
    from relay import log as relay_log
    from relay import serving

    relay_log.configure(settings.log_format)
    try:
        policy = serving.load_policy(settings.policy)
    except PolicyError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None
    sys.exit(asyncio.run(_run(settings, policy)))


async def _run(settings, policy) -> int:
    import structlog

    from relay import serving
    from relay.milter import serving as milter_serving

    log = structlog.get_logger("relay.milter")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pipeline = await asyncio.to_thread(serving.build_pipeline, settings, policy)
    try:   # the same store and signer as `relay serve` (keys checked, store reachable)
        collaborators = await serving.build_collaborators(settings)
    except (ConfigError, StoreError) as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    state: dict[str, object] = {}

    async def reload_loop() -> None:
        reload = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        while True:
            await reload.wait()
            reload.clear()
            try:
                new = await asyncio.to_thread(serving.load_policy, settings.policy)
            except Exception as exc:  # noqa: BLE001 - a bad reload must never stop the milter
                log.error("policy.reload_failed", path=str(settings.policy), error=f"{type(exc).__name__}: {exc}")
                continue
            milter_state = state.get("server")
            if milter_state is not None:
                milter_state.pipeline = milter_state.pipeline.with_policy(new)
            log.info("policy.reloaded", path=str(settings.policy), version=new.version)

    reloader = loop.create_task(reload_loop())
    try:
        await milter_serving.serve(settings, stop.wait, pipeline=pipeline, store=collaborators.store,
                                  signer=collaborators.signer,
                                  on_state=lambda s: state.__setitem__("server", s))
    except OSError as exc:
        click.echo(f"relay milter: cannot listen on {settings.milter_listen}: {exc.strerror or exc}", err=True)
        return 1
    finally:
        reloader.cancel()
        await asyncio.gather(reloader, return_exceptions=True)
        await collaborators.close()
    return 0
