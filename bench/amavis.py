"""amavisd-new as the comparison content filter: install, configure, start, stop.

The benchmark runs Debian's ``amavisd-new`` (``apt-get install -y amavisd-new``
if missing; the package starts no service here) from its own config file, in
the foreground, as the unprivileged ``amavis`` user, as an SMTP content filter
on a loopback port:

- virus checks only: the ``ClamAV-clamd`` entry of ``@av_scanners`` pointed at
  the benchmark's clamd unix socket (``CONTSCAN`` of amavis's temp files);
- spam checks off: ``@bypass_spam_checks_maps = (1)``, no SpamAssassin loaded;
- Debian's banned-file rules (.exe, .com, .js... are refused like the relay refuses them),
  infected and banned mail rejected (``D_REJECT``: a 5xx in session, as the relay's 550);
- forwarding to the same next hop: ``$forward_method = 'smtp:[127.0.0.1]:PORT'``;
- ``$max_servers = 4`` (children); everything else amavisd's built-in defaults
  (``$max_requests`` = 20 per child, as shipped), logging to a file at level 0.

    amavis = Amavis(workdir, clamd_socket, next_hop_port)   # writes amavisd.conf
    amavis.start()  ...  amavis.stop()
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

USER = "amavis"
BINARIES = ("amavisd-new", "amavisd")

CONFIG = r"""use strict;
# Written by bench/amavis.py: a virus-only SMTP content filter for the relay benchmark.
$MYHOME   = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$db_home  = "$MYHOME/db";
$helpers_home = "$MYHOME";
$pid_file  = "$MYHOME/var/amavisd.pid";
$lock_file = "$MYHOME/var/amavisd.lock";
$QUARANTINEDIR = undef;
$daemon_user  = '{user}';
$daemon_group = '{user}';
$mydomain   = 'example.ac.uk';
$myhostname = 'amavis.bench.example.ac.uk';
@local_domains_maps = (['.example.ac.uk']);
$max_servers = 4;
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = {port};
@inet_acl = qw(127.0.0.1);
$forward_method = 'smtp:[127.0.0.1]:{next_hop}';
$notify_method  = $forward_method;
$enable_db = 0;
$enable_zmq = 0;
$enable_global_cache = 0;
$enable_dkim_verification = 0;
$enable_dkim_signing = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/var/amavis.log";
$log_level = 0;
@bypass_spam_checks_maps = (1);
@bypass_banned_checks_maps = (0);
$final_virus_destiny      = D_REJECT;
$final_banned_destiny     = D_REJECT;
$final_spam_destiny       = D_PASS;
$final_bad_header_destiny = D_PASS;
$virus_admin = undef;
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'^application/x-msdownload$'i,
  qr'^application/x-msdos-program$'i,
  qr'^application/hta$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl|js|jse|wsf|hta)$'i,
  qr'^\.(exe-ms)$',
);
@av_scanners = (
  ['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {{}}\n", '{clamd_socket}'],
    qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
1;
"""


def binary() -> str | None:
    for name in BINARIES:
        path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if path:
            return path
    return None


def ensure_installed() -> str:
    """The amavisd binary; installs Debian's amavisd-new first if it is missing."""
    path = binary()
    if path:
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "amavisd-new"], check=True, env=env,
                   stdout=subprocess.DEVNULL, timeout=900)
    path = binary()
    if not path:
        raise RuntimeError("amavisd-new installed but no amavisd binary found")
    return path


def _wait_banner(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"amavisd exited with {proc.returncode} during start-up:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"amavisd did not answer on port {port} within {timeout}s")


class Amavis:
    """One private amavisd in ``workdir`` (made readable to the amavis user)."""

    def __init__(self, workdir: Path, clamd_socket: Path, next_hop_port: int, port: int) -> None:
        self.home = Path(workdir)
        self.port = port
        self.clamd_socket = Path(clamd_socket)
        self.next_hop_port = next_hop_port
        self.proc: subprocess.Popen | None = None
        self.conf = self.home / "etc" / "amavisd.conf"     # amavisd refuses a config it could write
        self.log = self.home / "var" / "amavis.log"

    def configure(self) -> None:
        self.binary = ensure_installed()
        entry = pwd.getpwnam(USER)
        for sub in ("", "etc", "tmp", "db", "var"):
            d = self.home / sub
            d.mkdir(parents=True, exist_ok=True)
            if sub in ("tmp", "db", "var"):
                os.chown(d, entry.pw_uid, entry.pw_gid)
            else:
                os.chmod(d, 0o755)
        self.conf.write_text(CONFIG.format(home=self.home, user=USER, port=self.port, next_hop=self.next_hop_port,
                                           clamd_socket=self.clamd_socket))
        os.chmod(self.conf, 0o644)
        # amavis (another user) must reach clamd's socket; clamd (root) reads amavis's temp files
        os.chmod(self.clamd_socket, 0o666)
        parent = self.clamd_socket.parent
        while parent != parent.parent:
            os.chmod(parent, os.stat(parent).st_mode | 0o005)
            if parent == Path("/tmp"):
                break
            parent = parent.parent

    def start(self, timeout: float = 90.0) -> int:
        """Start in the foreground (our child); returns the master's PID once it greets on its port."""
        self.configure()
        out = open(self.home / "stdout.log", "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf), "foreground"], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=str(self.home))
        finally:
            out.close()
        _wait_banner(self.port, timeout, self.proc, self.home / "stdout.log")
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM the master (it stops its children), SIGKILL the group if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        try:   # children left behind (same session/process group)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
