"""``relay serve``: run the SMTP relay in the foreground.

Signals: SIGTERM (and SIGINT) stop accepting, let transactions in flight
finish within ``shutdown_grace`` and exit 0; SIGHUP reloads the policy (an
invalid one is logged and the old one kept). With ``--workers N`` this
process supervises N worker processes sharing the listen port
(``SO_REUSEPORT``), forwards SIGTERM/SIGHUP to them, restarts a worker that
dies, and exits 0 when all stopped cleanly.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import tempfile
import time

import click

from relay.cli import config_option, load_settings
from relay.config import Settings
from relay.errors import PolicyError


@click.command()
@config_option
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes serving the listen port (SO_REUSEPORT). Default: the workers setting.")
def serve(config_path: str | None, workers: int | None) -> None:
    """Run the SMTP relay (Ctrl-C or SIGTERM to stop gracefully, SIGHUP to reload the policy)."""
    settings = load_settings(config_path)
    if workers is not None:
        settings = settings.replace(workers=workers)
    if settings.workers > 1 and settings.metrics is not None and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="relay-metrics-")
    from relay import log as relay_log
    from relay import serving

    relay_log.configure(settings.log_format)
    try:
        policy = serving.load_policy(settings.policy)   # fail fast, with the precise message
    except PolicyError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None
    if settings.workers == 1:
        code = asyncio.run(_worker(settings, policy))
    else:
        code = asyncio.run(_supervise(settings))
    sys.exit(code)


def _worker_entry(settings: Settings, parent: int, ready) -> None:
    """A worker process (spawned): its own logging, policy and event loop. Sets ``ready`` once listening."""
    os.environ["RELAY_WORKER_OF"] = str(parent)
    from relay import log as relay_log
    from relay import serving

    relay_log.configure(settings.log_format)
    sys.exit(asyncio.run(_worker(settings, serving.load_policy(settings.policy), lambda address: ready.set())))


async def _worker(settings: Settings, policy, ready=None) -> int:
    from relay import serving

    serving.return_large_buffers()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)

    async def reload_trigger() -> None:
        await reload.wait()
        reload.clear()

    pipeline = await asyncio.to_thread(serving.build_pipeline, settings, policy)
    try:
        await serving.serve(settings, stop.wait, reload_trigger=reload_trigger, pipeline=pipeline, ready=ready)
    except OSError as exc:
        click.echo(f"relay serve: cannot listen on {settings.listen}: {exc.strerror or exc}", err=True)
        return 1
    return 0


async def _supervise(settings: Settings) -> int:
    """Start N workers, forward signals, restart the ones that die, stop them all on SIGTERM."""
    import structlog

    log = structlog.get_logger("relay.supervisor")
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    procs: dict[int, tuple[multiprocessing.process.BaseProcess, object]] = {}

    def start(slot: int) -> None:
        ready = ctx.Event()
        proc = ctx.Process(target=_worker_entry, args=(settings, os.getpid(), ready), name=f"relay-worker-{slot}")
        proc.start()
        procs[slot] = (proc, ready)

    def forward(sig: int) -> None:
        for proc, _ in procs.values():
            if proc.pid and proc.exitcode is None:
                os.kill(proc.pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, forward, signal.SIGHUP)
    metrics_server = metrics_close = None
    if settings.metrics is not None:
        from relay.serving import start_metrics

        metrics_server, metrics_close = await start_metrics(settings)
    for slot in range(settings.workers):
        start(slot)
    log.info("supervising", workers=settings.workers, pids=[p.pid for p, _ in procs.values()])
    failed = False
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except TimeoutError:
            pass
        for slot, (proc, ready) in list(procs.items()):
            if proc.exitcode is None or stop.is_set():
                continue
            if not ready.is_set():         # it never listened: restarting would fail the same way
                log.error("worker.failed_at_start", pid=proc.pid, exitcode=proc.exitcode)
                failed = True
                stop.set()
                break
            log.warning("worker.died", pid=proc.pid, exitcode=proc.exitcode)
            proc.close()
            start(slot)
    forward(signal.SIGTERM)
    deadline = time.monotonic() + settings.shutdown_grace + 5.0
    codes = []
    for proc, _ in procs.values():
        await asyncio.to_thread(proc.join, max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            log.error("worker.killed", pid=proc.pid)
            proc.kill()
            await asyncio.to_thread(proc.join, 5.0)
        codes.append(proc.exitcode)
    if metrics_server is not None:
        metrics_server.close()
        await metrics_close()
    log.info("stopped", exitcodes=codes)
    return 1 if failed or any(code != 0 for code in codes) else 0
