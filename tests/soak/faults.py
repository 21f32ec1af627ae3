"""The real services of a soak run and the faults injected into them.

:class:`Services` owns a private clamd, an aiosmtpd capture sink (the next
hop) and one ``relay serve`` subprocess with the shipped policy and a SQLite
quarantine. Each fault is a coroutine that breaks one service for a while and
repairs it; every wait is bounded.

Faults (names used by ``--faults``):

- ``clamd_kill``: SIGKILL the clamd by PID, leave it down, start it again on
  the same port (its own config file);
- ``clamd_hang``: SIGSTOP clamd (connections queue, nothing answers), then SIGCONT;
- ``sink_refuse`` / ``sink_drop`` / ``sink_slow``: the next hop answers the end
  of DATA with 451, aborts the session before answering, or answers late;
- ``sink_down`` / ``sink_busy``: the next hop's listener is closed (connection
  refused) or greets with 421 and hangs up; open sessions are cut as it goes;
- ``sink_rcpt_4xx``: the next hop answers every RCPT with 450;
- ``relay_kill``: SIGKILL the relay (``relay serve``, or ``relay milter`` with
  ``--front milter``) mid-transaction (traffic is flowing) and start it again
  on the same port;
- ``store_lock``: another connection holds ``BEGIN EXCLUSIVE`` on the
  SQLite quarantine past the store's busy timeout;
- ``store_restart``: with ``--store postgres``, the PostgreSQL server is
  stopped (fast shutdown cuts the relay's sessions) and started again
  (with SQLite it is a ``store_lock`` of its own, shorter duration: 4 s,
  within the store's 10 s busy timeout, so writes wait rather than fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures.clamd import _state, start_clamd, stop_pid
from tests.fixtures.common import free_port
from tests.fixtures.smtp import wait_for_greeting
from tests.soak.sink import SoakSink

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "icmp-email-use.yaml"


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z", "X")


def clamd_ping(url: str, timeout: float = 1.0) -> bool:
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except OSError:
        return False


class RssMonitor:
    """Polls VmRSS/VmHWM of the current relay process (and its children) from a thread."""

    def __init__(self, pid_of) -> None:
        self._pid_of = pid_of
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    @staticmethod
    def _kb(pid: int, key: str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def sample(self) -> None:
        pid = self._pid_of()
        if pid:
            self.peak_kb = max(self.peak_kb, self._kb(pid, "VmRSS"), self._kb(pid, "VmHWM"))

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.sample()

    def start(self) -> RssMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:       # started
            self._thread.join(5)


class Postgres:
    """A private PostgreSQL 15 (as in tests/fixtures/postgres.py) that can be stopped and started again."""

    BIN = Path(os.environ.get("RELAY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

    def __init__(self, base: Path) -> None:
        self.base, self.data = base, base / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [str(self.BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"{args[0]} failed: {out.stderr.strip()[-500:]}")

    def init(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            import pwd

            pg = pwd.getpwnam("postgres")
            for path in (self.base, self.data):
                os.chown(path, pg.pw_uid, pg.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                  "--locale", "C")
        self.start()

    def start(self) -> None:
        opts = f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 -c max_connections=60"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "pg.log"), "-o", opts, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")


@dataclass
class Services:
    workdir: Path
    clamd_url: str = ""
    clamd_pid: int = 0
    sink: SoakSink | None = None
    relay: subprocess.Popen | None = None
    relay_port: int = 0
    relay_starts: int = 0
    store: str = "sqlite"
    postgres: Postgres | None = None
    _clamd_procs: list = field(default_factory=list)
    relay_command = "relay serve"

    @property
    def db_path(self) -> Path:
        return self.workdir / "quarantine.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.workdir / "relay.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update({
            "RELAY_LISTEN": f"127.0.0.1:{self.relay_port}", "RELAY_UPSTREAM": f"127.0.0.1:{self.sink.port}",
            "RELAY_UPSTREAM_TLS": "off", "RELAY_CLAMD": self.clamd_url, "RELAY_POLICY": str(POLICY),
            "RELAY_QUARANTINE": self.postgres.url if self.postgres else f"sqlite:///{self.db_path}",
            "RELAY_LOG_FORMAT": "json",
            "RELAY_HOSTNAME": "relay.soak", "RELAY_CLAMD_TIMEOUT": "3", "RELAY_SCAN_TIMEOUT": "8",
            "RELAY_UPSTREAM_TIMEOUT": "10", "RELAY_SHUTDOWN_GRACE": "5", "PYTHONUNBUFFERED": "1",
        })
        return env

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Services:
        if self.store == "postgres":
            self.postgres = Postgres(Path(tempfile.mkdtemp(prefix="relay-soak-pg-")))   # reachable by user postgres
            self.postgres.init()
        self.clamd_url, self.clamd_pid = start_clamd(self.workdir / "clamd")
        self.sink = SoakSink().start()
        self.relay_port = free_port()
        self.start_relay()
        return self

    def start_relay(self) -> None:
        with open(self.log_path, "ab") as out:
            self.relay = subprocess.Popen([sys.executable, "-m", "relay.cli", self.relay_command.split()[-1]],
                                          env=self.env(), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT)
        self.relay_starts += 1
        self.wait_for_relay()

    def wait_for_relay(self) -> None:
        wait_for_greeting("127.0.0.1", self.relay_port, timeout=60, proc=self.relay)

    def start_clamd_again(self) -> None:
        """clamd on its old config (same port), Foreground: the Popen is clamd itself."""
        directory = self.workdir / "clamd"
        with open(directory / "restart.log", "ab") as out:
            proc = subprocess.Popen(["clamd", f"--config-file={directory / 'clamd.conf'}"], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._clamd_procs.append(proc)
        self.clamd_pid = proc.pid
        deadline = time.monotonic() + 60
        while not clamd_ping(self.clamd_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clamd did not come back (exit {proc.poll()})")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.relay is not None and self.relay.poll() is None:
            self.relay.send_signal(signal.SIGTERM)
            try:
                self.relay.wait(30)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait(10)
        if self.clamd_pid:
            if _alive(self.clamd_pid):
                os.kill(self.clamd_pid, signal.SIGCONT)     # a stopped process ignores SIGTERM
            stop_pid(self.clamd_pid)
        for proc in self._clamd_procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if self.sink is not None:
            self.sink.stop()
        if self.postgres is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.postgres.stop("immediate")
            shutil.rmtree(self.postgres.base, ignore_errors=True)

    def relay_pid(self) -> int:
        return self.relay.pid if self.relay is not None and self.relay.poll() is None else 0


# -------------------------------------------------------------------- faults: each breaks, waits, repairs


async def clamd_kill(svc: Services, duration: float) -> str:
    pid = svc.clamd_pid
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(stop_pid, pid, 10)
    await asyncio.sleep(duration)
    await asyncio.to_thread(svc.start_clamd_again)
    return f"clamd pid {pid} SIGKILLed, down {duration:.0f}s, restarted as pid {svc.clamd_pid}"


async def clamd_hang(svc: Services, duration: float) -> str:
    os.kill(svc.clamd_pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(duration)
    finally:
        os.kill(svc.clamd_pid, signal.SIGCONT)
    return f"clamd pid {svc.clamd_pid} SIGSTOPped for {duration:.0f}s, then SIGCONT"


async def _sink_mode(svc: Services, duration: float, **mode) -> None:
    handler = svc.sink.handler
    old = {k: getattr(handler, k) for k in mode}
    for key, value in mode.items():
        setattr(handler, key, value)
    try:
        await asyncio.sleep(duration)
    finally:
        for key, value in old.items():
            setattr(handler, key, value)


async def sink_refuse(svc: Services, duration: float) -> str:
    await _sink_mode(svc, duration, data_reply="451 4.3.0 next hop busy")
    return f"next hop answered DATA with 451 for {duration:.0f}s"


async def sink_drop(svc: Services, duration: float) -> str:
    await _sink_mode(svc, duration, drop_in_data=True)
    return f"next hop aborted every session at end of DATA for {duration:.0f}s"


async def sink_slow(svc: Services, duration: float) -> str:
    await _sink_mode(svc, duration, data_delay=2.0)
    return f"next hop answered DATA 2s late for {duration:.0f}s"


async def sink_down(svc: Services, duration: float) -> str:
    await svc.sink.down(duration)
    return f"next hop not listening (connection refused, open sessions cut) for {duration:.0f}s"


async def sink_busy(svc: Services, duration: float) -> str:
    await svc.sink.down(duration, greeting=b"421 4.3.2 sink.test busy, try again later\r\n")
    return f"next hop greeted with 421 and hung up (open sessions cut) for {duration:.0f}s"


async def sink_rcpt_4xx(svc: Services, duration: float) -> str:
    await _sink_mode(svc, duration, rcpt_reply="450 4.2.1 mailbox busy, try later")
    return f"next hop answered every RCPT with 450 for {duration:.0f}s"


async def relay_kill(svc: Services, duration: float) -> str:
    pid = svc.relay.pid
    svc.relay.send_signal(signal.SIGKILL)
    await asyncio.to_thread(svc.relay.wait, 10)
    await asyncio.sleep(duration)
    await asyncio.to_thread(svc.start_relay)
    return f"{svc.relay_command} pid {pid} SIGKILLed with traffic in flight, restarted as pid {svc.relay.pid}"


async def store_lock(svc: Services, duration: float) -> str:
    if svc.postgres is not None:
        return await store_restart(svc, duration / 3)
    def hold() -> None:
        conn = sqlite3.connect(svc.db_path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(duration)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    await asyncio.to_thread(hold)
    return f"quarantine db held under BEGIN EXCLUSIVE by another connection for {duration:.0f}s"


async def store_restart(svc: Services, duration: float) -> str:
    """PostgreSQL store: fast shutdown (sessions cut), down for ``duration``, started again."""
    if svc.postgres is None:
        return await store_lock(svc, duration)
    await asyncio.to_thread(svc.postgres.stop, "fast")
    await asyncio.sleep(duration)
    await asyncio.to_thread(svc.postgres.start)
    return f"PostgreSQL quarantine stopped (fast: sessions cut) for {duration:.0f}s, then started"


FAULTS = {f.__name__: f for f in (clamd_kill, clamd_hang, sink_refuse, sink_drop, sink_slow, sink_down, sink_busy,
                                  sink_rcpt_4xx, relay_kill, store_lock, store_restart)}
