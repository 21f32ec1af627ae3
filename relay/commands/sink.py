"""``relay sink``: a local capture SMTP server standing in for the next hop."""

from __future__ import annotations

import asyncio
import signal

import click

from relay.config import ConfigError, _hostport


def _listen(ctx, param, value: str):
    try:
        return _hostport(value)
    except (ValueError, ConfigError) as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--listen", default="127.0.0.1:10026", show_default=True, callback=_listen,
              help="Address to listen on (host:port).")
@click.option("--maildir", default="var/outbox", show_default=True, type=click.Path(file_okay=False),
              help="Maildir where each message is stored byte for byte (new/), envelopes in envelopes/.")
def sink(listen, maildir: str) -> None:
    """Run a capture SMTP server that stores what it receives (Ctrl-C to stop)."""
    from relay import sink as sink_mod

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(address) -> None:
            click.echo(f"relay sink: listening on {address[0]}:{address[1]}, storing mail in {maildir}/new", err=True)

        await sink_mod.run(listen.host, listen.port, maildir, stop.wait, ready)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None
