"""The milter front against a real MTA: a private Postfix with ``smtpd_milters`` pointing at
``relay milter`` (a subprocess with RELAY_* settings), mail submitted to Postfix's smtpd and
delivered by Postfix to an aiosmtpd capture sink.

Covered: clean mail is delivered tagged (our X-Policy-Action on top, a forged one gone, the
subject prefixed, DKIM over the edited message verified by OpenDKIM); EICAR is rejected with
the policy's 550 text visible to the SMTP client; personal data to an external recipient is
held (250 from Postfix, nothing at the sink) and released once by ``relay quarantine release``;
a mixed message is delivered to the internal recipient only and held for the external one;
``relay milter`` stopped -> Postfix tempfails (milter_default_action = tempfail).
``relay milter`` blocked (SIGSTOP) mid-message -> Postfix tempfails at its
milter_content_timeout. The raw milter packets of one session are recorded for the codec's
unit tests (``tests/unit/milter/data/postfix-to-milter.bin`` and ``milter-to-postfix.bin``)
when RECORD_MILTER is set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from relay.milter import protocol as p
from tests.fixtures.clamd import EICAR
from tests.fixtures.common import free_port
from tests.fixtures.postfix import make_postfix  # noqa: F401 - fixture
from tests.fixtures.smtp import ROOT

pytestmark = [pytest.mark.postfix, pytest.mark.clamd, pytest.mark.slow]

POLICY = """\
name: milter test
mode: enforce
organisation:
  name: Example
  internal_domains: [example.ac.uk]
defaults:
  action: accept
  scanner_failure: tempfail
rules:
  - id: malware
    clause: "5.1"
    reason: "malware found in an attachment"
    when: {finding: {kind: malware}}
    action: reject
  - id: scanner-unavailable
    clause: "5.1"
    reason: "scanner unavailable ({scanner}); try again later"
    when: {finding: {kind: scanner_unavailable}}
    action: tempfail
  - id: personal-data-external
    clause: "5.2"
    reason: "unprotected personal data to external recipients"
    when: {finding: {kind: personal_data, confidence: high, protected: false}}
    recipients: external
    action: hold
  - id: desktop-client
    clause: "5.4"
    reason: "sent from a desktop mail client"
    when: {finding: {kind: desktop_client}}
    action: tag
    tag: {subject_prefix: "[desktop]", headers: {X-Policy-Note: "use the web client"}}
"""

SENDER = "alice@example.ac.uk"


class MilterProcess:
    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, env: dict[str, str]) -> None:
        self.proc, self.port, self.log_path, self.env = proc, port, log_path, env

    def events(self, name: str | None = None) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if name is None or event.get("event") == name:
                    out.append(event)
        return out

    def wait_for_event(self, name: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"fewer than {count} {name!r} events:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def start_milter(tmp_path, clamd):
    procs: list[MilterProcess] = []

    def factory(upstream_port: int, extra_env: dict[str, str] | None = None) -> MilterProcess:
        port = free_port()
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update({"RELAY_MILTER_LISTEN": f"inet:127.0.0.1:{port}", "RELAY_LOG_FORMAT": "json",
                    "RELAY_POLICY": str(policy), "RELAY_CLAMD": clamd, "RELAY_HOSTNAME": "relay.test",
                    "RELAY_QUARANTINE": f"sqlite:///{tmp_path}/quarantine.sqlite3",
                    "RELAY_UPSTREAM": f"127.0.0.1:{upstream_port}", "RELAY_UPSTREAM_TLS": "off",
                    "PYTHONUNBUFFERED": "1"})
        env.update(extra_env or {})
        log_path = tmp_path / f"milter-{len(procs)}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "relay.cli", "milter"], env=env, cwd=ROOT,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        milter = MilterProcess(proc, port, log_path, env)
        procs.append(milter)
        milter.wait_for_event("serving")
        return milter

    yield factory
    for milter in procs:
        milter.stop()


@pytest.fixture
def chain(make_sink, make_postfix, start_milter):
    """(postfix, milter, sink): Postfix relays to the sink and asks the milter about every message."""
    sink = make_sink()
    milter = start_milter(sink.port)
    postfix = make_postfix(relay_to=sink.port, main={
        "smtpd_milters": f"inet:127.0.0.1:{milter.port}",
        "milter_default_action": "tempfail",
        "milter_protocol": "6",
        "milter_connect_timeout": "5s",
        "milter_command_timeout": "30s",
        "milter_content_timeout": "120s",
    })
    return postfix, milter, sink


def message(subject: str = "Lunch", body: str = "See you at noon.\r\n", to: str = "bob@partner.example",
            extra: str = "") -> bytes:
    return (f"From: Alice <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <m{time.monotonic_ns()}@example.ac.uk>\r\n{extra}MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def submit(postfix, rcpts: list[str], data: bytes) -> tuple[int, bytes]:
    """Send one message to Postfix's smtpd; the reply to the end of DATA."""
    with smtplib.SMTP(postfix.host, postfix.port, timeout=60) as client:
        client.ehlo("client.example.ac.uk")
        code, text = client.mail(SENDER)
        if code != 250:
            return code, text
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code != 250:
                return code, text
        return client.data(data)


def headers_of(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return re.sub(r"\r\n[ \t]", " ", head).split("\r\n")


def test_clean_mail_is_delivered_tagged_and_forged_verdict_removed(chain):
    postfix, milter, sink = chain
    forged = "X-Policy-Action: accept\r\nX-Mailer: Microsoft Outlook 16.0\r\n"
    code, text = submit(postfix, ["bob@partner.example"], message(extra=forged, body="Hello Bob,\r\n\r\nsee you.\r\n"))
    assert code == 250, text
    [received] = sink.wait_for_messages(1, 30)
    heads = headers_of(received.data)
    actions = [h for h in heads if h.lower().startswith("x-policy-action:")]
    assert actions == ["X-Policy-Action: tag"], heads
    assert "X-Policy-Rules: desktop-client" in heads
    assert "X-Policy-Note: use the web client" in heads
    assert "Subject: [desktop] Lunch" in heads
    assert received.data.endswith(b"\r\n\r\nHello Bob,\r\n\r\nsee you.\r\n")
    [event] = milter.wait_for_event("decision")
    assert event["front"] == "milter" and event["action"] == "tag"
    assert event["envelope"]["rcpt_tos"] == ["bob@partner.example"]


def dkim_key(tmp_path: Path) -> tuple[Path, str]:
    """A key from the real ``relay dkim keygen`` and its TXT record line for OpenDKIM's TestPublicKeys."""
    out = tmp_path / "s1.example.ac.uk.pem"
    done = subprocess.run([sys.executable, "-m", "relay.cli", "dkim", "keygen", "--domain", "example.ac.uk",
                           "--selector", "s1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True, stdin=subprocess.DEVNULL)
    name, _, strings = done.stdout.strip().splitlines()[-1].partition(" IN TXT ")
    value = "".join(re.findall(r'"([^"]*)"', strings))
    return out, f"{name} {value}"


def opendkim_verify(tmp_path: Path, record: str, raw: bytes) -> str:
    (tmp_path / "message.eml").write_bytes(raw)
    (tmp_path / "keys.txt").write_text(record + "\n")
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Mode v\nSyslog no\nAlwaysAddARHeader yes\nTestPublicKeys {tmp_path / 'keys.txt'}\n")
    done = subprocess.run(["opendkim", "-x", str(conf), "-vvv", "-t", str(tmp_path / "message.eml")],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return done.stdout + done.stderr


def test_dkim_signature_covers_the_message_as_postfix_sends_it(make_sink, make_postfix, start_milter, tmp_path):
    key, record = dkim_key(tmp_path)
    sink = make_sink()
    milter = start_milter(sink.port, {"RELAY_DKIM_DOMAIN": "example.ac.uk", "RELAY_DKIM_SELECTOR": "s1",
                                      "RELAY_DKIM_KEY": str(key)})
    postfix = make_postfix(relay_to=sink.port, main={"smtpd_milters": f"inet:127.0.0.1:{milter.port}",
                                                     "milter_default_action": "tempfail"})
    forged = "X-Policy-Action: accept\r\nX-Mailer: Microsoft Outlook 16.0\r\nX-Folded: one\r\n\ttwo\r\n"
    code, text = submit(postfix, ["bob@partner.example"], message(extra=forged, body="Signed.\r\n"))
    assert code == 250, text
    [received] = sink.wait_for_messages(1, 30)
    heads = headers_of(received.data)
    assert sum(h.startswith("DKIM-Signature:") for h in heads) == 1
    assert "Subject: [desktop] Lunch" in heads and "X-Policy-Action: tag" in heads
    result = opendkim_verify(tmp_path, record, received.data)
    assert "dkim=pass" in result, result


def test_malware_is_rejected_with_the_policy_reply(chain):
    postfix, milter, sink = chain
    body = "Attached.\r\n\r\n" + EICAR.decode() + "\r\n"
    code, text = submit(postfix, ["bob@partner.example"], message(body=body))
    assert code == 550, text
    assert b"5.7.1 malware found in an attachment [rule malware, clause 5.1]" in text
    [event] = milter.wait_for_event("decision")
    assert event["action"] == "reject" and event["reply"] == "550 5.7.1"
    postfix.wait_for_log(r"milter-reject: END-OF-MESSAGE")
    assert sink.messages == []


def test_personal_data_to_external_is_held_and_released_once(chain):
    postfix, milter, sink = chain
    filler = "".join(f"line {i:05d} of the payroll export, nothing else here.\r\n" for i in range(3000))
    body = "Payroll: NI number AB123456C for Bob Smith.\r\n" + filler + ".starts with a dot\r\n"   # ~170 KB
    data = message(subject="Payroll", body=body)
    code, text = submit(postfix, ["bob@partner.example"], data)
    assert code == 250, text                                   # Postfix's own 250: discarded there
    [event] = milter.wait_for_event("decision")
    assert event["action"] == "hold" and event["quarantine_id"]
    postfix.wait_for_log(r"milter-discard: END-OF-MESSAGE")
    time.sleep(1.0)
    assert sink.messages == []
    qid = event["quarantine_id"]
    env = milter.env
    release = subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", "release", qid, "--reviewer", "rev"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert release.returncode == 0, release.stderr + release.stdout
    [released] = sink.wait_for_messages(1, 20)
    assert released.mail_from == SENDER and released.rcpt_tos == ("bob@partner.example",)
    added, _, original = released.data.partition(b"From: ")
    assert b"From: " + original == data          # the original, reassembled from Postfix's milter packets,
    assert added.startswith(b"X-Policy-Action: tag\r\n")     # tagged on release as `relay serve` does
    again = subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", "release", qid, "--reviewer", "rev"],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode != 0
    time.sleep(0.5)
    assert len(sink.messages) == 1


def test_held_for_some_recipients_only_the_others_get_it(chain):
    postfix, milter, sink = chain
    data = message(subject="Payroll", body="NI number AB123456C for Bob Smith.\r\n",
                   to="bob@partner.example, carol@example.ac.uk")
    code, text = submit(postfix, ["bob@partner.example", "carol@example.ac.uk"], data)
    assert code == 250, text
    [delivered] = sink.wait_for_messages(1, 30)
    assert delivered.rcpt_tos == ("carol@example.ac.uk",)
    assert "X-Policy-Action: accept" in headers_of(delivered.data)
    [event] = milter.wait_for_event("decision")
    assert event["recipients"] == {"forwarded": ["carol@example.ac.uk"], "held": ["bob@partner.example"]}
    assert event["quarantine_id"]


def test_milter_down_postfix_tempfails(chain):
    postfix, milter, sink = chain
    assert milter.stop() == 0
    code, text = submit(postfix, ["bob@partner.example"], message())
    assert 400 <= code < 500, (code, text)
    assert sink.messages == []


def test_milter_blocked_mid_message_postfix_tempfails_at_its_content_timeout(make_sink, make_postfix, start_milter):
    """A `relay milter` that stops answering (SIGSTOP: no keepalive, no deadline of its own can
    run) after it took the connection: Postfix's milter_content_timeout (5 s here) applies
    milter_default_action = tempfail, the client gets a 4xx, nothing reaches the sink."""
    sink = make_sink()
    milter = start_milter(sink.port)
    postfix = make_postfix(relay_to=sink.port, main={
        "smtpd_milters": f"inet:127.0.0.1:{milter.port}", "milter_default_action": "tempfail",
        "milter_protocol": "6", "milter_command_timeout": "5s", "milter_content_timeout": "5s"})
    with smtplib.SMTP(postfix.host, postfix.port, timeout=30) as client:
        client.ehlo("client.example.ac.uk")
        assert client.mail(SENDER)[0] == 250
        code, text = client.rcpt("bob@partner.example")      # Postfix waited for the milter's answer
        assert code == 250, text
        milter.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            code, text = client.data(message())
            elapsed = time.monotonic() - started
        finally:
            milter.proc.send_signal(signal.SIGCONT)
    assert code == 451 and b"4.7.1" in text, (code, text)
    assert 4.0 <= elapsed < 20.0, elapsed                     # Postfix's timeout, not ours, answered
    postfix.wait_for_log(r"milter inet:127\.0\.0\.1:\d+: can't read SMFIC_\w+ reply packet header: "
                         r"Connection timed out")
    postfix.wait_for_log(r"milter-reject: END-OF-MESSAGE .*4\.7\.1 Service unavailable")
    milter.wait_for_event("milter.transaction_abandoned")     # resumed: the half message is dropped
    assert milter.events("decision") == []
    assert sink.messages == [] and postfix.queue_files() == []
    assert milter.stop() == 0


class RecordingProxy:
    """A TCP relay between Postfix and the milter keeping the bytes each side sent (in order)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sessions: list[tuple[bytearray, bytearray]] = []    # (to the milter, to the MTA) per connection
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                mta, _ = self.listener.accept()
            except OSError:
                return
            milter = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [mta, milter]
            to_milter, to_mta = bytearray(), bytearray()
            self.sessions.append((to_milter, to_mta))
            for src, dst, buf in ((mta, milter, to_milter), (milter, mta, to_mta)):
                thread = threading.Thread(target=self._pump, args=(src, dst, buf), daemon=True)
                thread.start()
                self.threads.append(thread)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, buf: bytearray) -> None:
        try:
            while data := src.recv(65536):
                buf += data
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()
        for thread in self.threads:
            thread.join(5)


def test_recorded_postfix_session_decodes_with_the_codec(make_sink, make_postfix, start_milter):
    """Two messages in one SMTP session through a recording proxy: every packet Postfix sent parses,
    the negotiation is what we asked, and our edits are header actions. RECORD_MILTER=DIR keeps
    the bytes as fixtures for the codec's unit tests."""
    sink = make_sink()
    milter = start_milter(sink.port)
    proxy = RecordingProxy(milter.port)
    try:
        postfix = make_postfix(relay_to=sink.port, main={"smtpd_milters": f"inet:127.0.0.1:{proxy.port}",
                                                         "milter_default_action": "tempfail"})
        with smtplib.SMTP(postfix.host, postfix.port, timeout=60) as client:
            client.ehlo("client.example.ac.uk")
            client.sendmail(SENDER, ["bob@partner.example"],
                            message(extra="X-Policy-Action: accept\r\nX-Mailer: Microsoft Outlook 16.0\r\n"
                                          "X-Folded: one\r\n\ttwo\r\n"))
            client.sendmail(SENDER, ["bob@partner.example", "carol@example.ac.uk"],
                            message(subject="Payroll", body="NI number AB123456C for Bob Smith.\r\n"))
        sink.wait_for_messages(2, 30)
        milter.wait_for_event("decision", 2)
        deadline = time.monotonic() + 10
        while not proxy.sessions[-1][0].endswith(p.encode(p.QUIT)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proxy.close()
    to_milter, to_mta = max(proxy.sessions, key=lambda pair: len(pair[0]))   # the session that carried mail
    mta = [p.parse(packet) for packet in p.Decoder().feed(bytes(to_milter))]
    ours = p.Decoder().feed(bytes(to_mta))
    kinds = [type(e).__name__ for e in mta if not isinstance(e, p.Macros)]
    assert kinds[:4] == ["OptNeg", "Connect", "Helo", "Mail"] and kinds[-1] == "Quit"
    assert kinds.count("EndOfBody") == 2 and "Data" not in kinds
    offer = mta[0]
    assert offer.version == 6
    assert ours[0].command == p.OPTNEG
    agreed = p.parse(ours[0])
    assert agreed.actions == p.WANTED_ACTIONS and agreed.steps == p.WANTED_STEPS & offer.steps
    sent = [packet.command for packet in ours[1:]]
    assert p.CHGHEADER in sent and p.INSHEADER in sent and p.DELRCPT in sent
    folded = [e for e in mta if isinstance(e, p.Header) and e.name == b"X-Folded"]
    assert folded and folded[0].value.startswith(b" one")
    if os.environ.get("RECORD_MILTER"):
        target = Path(os.environ["RECORD_MILTER"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "postfix-to-milter.bin").write_bytes(bytes(to_milter))
        (target / "milter-to-postfix.bin").write_bytes(bytes(to_mta))


def test_sighup_reloads_the_policy_and_sigterm_stops_cleanly(start_milter, tmp_path, make_sink):
    milter = start_milter(make_sink().port)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("name: milter test", "name: milter test v2"), encoding="utf-8")
    milter.proc.send_signal(signal.SIGHUP)
    [reloaded] = milter.wait_for_event("policy.reloaded")
    assert reloaded["version"] != milter.events("serving")[0]["policy_version"]
    policy.write_text("rules: [", encoding="utf-8")                 # a broken policy is refused, the old kept
    milter.proc.send_signal(signal.SIGHUP)
    milter.wait_for_event("policy.reload_failed")
    assert milter.stop() == 0
    assert milter.events("stopped")
