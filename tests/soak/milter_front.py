"""The soak's milter front: client -> private Postfix (``smtpd_milters`` -> ``relay milter``) -> sink.

:class:`MilterServices` is :class:`~tests.soak.faults.Services` with ``relay
milter`` instead of ``relay serve`` and a private Postfix
(:mod:`tests.fixtures.postfix`) in front of it, wired as
``tests/integration/test_milter_postfix.py`` and ``deploy/postfix/milter.md``
recommend: ``milter_default_action = tempfail``, so a milter that is down,
killed or too slow makes Postfix answer 451 and the client retry; nothing
passes unscanned. The client submits to Postfix (``relay_port`` is Postfix's
smtpd); Postfix relays to the sink. The same faults apply: ``relay_kill``
SIGKILLs the milter, the sink faults make Postfix queue and retry
(``drain_mta`` flushes that queue at the end, before the accounting).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.common import free_port
from tests.fixtures.postfix import PostfixInstance, default_main, postfix_available
from tests.soak.faults import Services


@dataclass
class MilterServices(Services):
    postfix: PostfixInstance | None = None
    milter_port: int = 0
    relay_command = "relay milter"

    def env(self) -> dict[str, str]:
        env = super().env()
        del env["RELAY_LISTEN"]                  # the client's port is Postfix's, not ours
        env["RELAY_MILTER_LISTEN"] = f"inet:127.0.0.1:{self.milter_port}"
        return env

    def start(self) -> MilterServices:
        if not postfix_available():
            raise RuntimeError("the milter front needs Debian's postfix package (postfix user, postdrop group)")
        self.milter_port = free_port()
        super().start()
        directory = Path(tempfile.mkdtemp(prefix="relay-soak-postfix-"))
        main = default_main(directory, self.sink.port)
        main.update({
            "smtpd_milters": f"inet:127.0.0.1:{self.milter_port}",
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "milter_connect_timeout": "5s",
            "milter_command_timeout": "30s",
            "milter_content_timeout": "60s",
        })
        self.postfix = PostfixInstance(directory, free_port(), main, {})
        self.postfix.start()
        self.relay_port = self.postfix.port
        return self

    def wait_for_relay(self, timeout: float = 60.0) -> None:
        """Until this start's ``serving`` event is in the log (one per start), bounded."""
        deadline = time.monotonic() + timeout
        while self._serving_events() < self.relay_starts:
            if self.relay.poll() is not None:
                raise RuntimeError(f"relay milter exited with {self.relay.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"relay milter did not start within {timeout:.0f}s")
            time.sleep(0.05)

    def _serving_events(self) -> int:
        count = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"serving"' in line:
                try:
                    count += json.loads(line).get("event") == "serving"
                except ValueError:
                    continue
        return count

    def drain_mta(self, timeout: float = 180.0) -> tuple[int, float]:
        """Flush Postfix's queue (mail the sink deferred) until it is empty or ``timeout`` passes:
        (queue files left, seconds it took)."""
        started = time.monotonic()
        left = self.postfix.queue_files()
        while left and time.monotonic() - started < timeout:
            self.postfix.flush()
            time.sleep(1.0)
            left = self.postfix.queue_files()
        return len(left), round(time.monotonic() - started, 1)

    def mta_counts(self) -> dict[str, int]:
        """From Postfix's log: deliveries to the sink it deferred (and retried), replies it gave on the
        milter's behalf or its default action (4xx: tempfail, 5xx: reject)."""
        log = self.postfix.log()
        replies = re.findall(r"milter-reject: \S+ from [^:]*: (?:\d{3} )?(\d)\.\d+\.\d+ ", log)
        return {"mta_deferrals": log.count("status=deferred"), "mta_milter_tempfails": replies.count("4"),
                "mta_milter_rejects": replies.count("5")}

    def stop(self) -> None:
        if self.postfix is not None:
            self.postfix.stop()
            (self.workdir / "postfix.log").write_text(self.postfix.log(), encoding="utf-8")
            shutil.rmtree(self.postfix.directory, ignore_errors=True)
        super().stop()
