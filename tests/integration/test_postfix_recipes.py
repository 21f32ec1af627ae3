"""The Postfix recipes in deploy/postfix/ work as written, with a real Postfix.

For each recipe (after-queue ``content_filter``, before-queue ``smtpd_proxy_filter``)
a private Postfix instance (``tests/fixtures/postfix.py``) is configured from the
snippet files themselves -- only the ports change (10025: the relay, 10026: the
reinjection listener) -- with ``relay serve`` (a subprocess, the shipped policy,
the private clamd, a SQLite quarantine) as the filter and an aiosmtpd capture
sink as Postfix's relayhost. Mail is sent into Postfix's public smtpd with
aiosmtplib and the test follows it:

- clean mail arrives at the sink, tagged with the relay's ``X-Policy-Action``;
- malware is refused: during the session (before-queue: the client sees
  ``550 5.7.1 ... [rule malware, clause 5.1]``) or by a bounce (after-queue:
  Postfix bounces it, the DSN to the sender reaches the sink) -- never to the
  recipient;
- personal data to an external recipient is held: listed by
  ``relay quarantine list --json``, nothing at the sink for the recipient; the
  shipped rule notifies the sender, and that notice reaches the sink;
- with clamd down the relay tempfails: after-queue, Postfix defers the message
  and keeps it; before-queue, the client gets the 451 and keeps it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from tests.fixtures.common import free_port
from tests.fixtures.postfix import make_postfix  # noqa: F401 - the fixture, used by name

pytestmark = [pytest.mark.postfix, pytest.mark.clamd, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "deploy" / "postfix"
POLICY = ROOT / "policies" / "icmp-email-use.yaml"
CASES = ROOT / "tests" / "data" / "policy-cases"
SENDER = "alice@example.ac.uk"
EXTERNAL = "bob@partner.example.com"
CLIENT_HELO = "client.example.ac.uk"
WAIT = 30.0   # seconds: the longest any message may take through Postfix and the relay


# --------------------------------------------------------------------------- the snippets


def substitute(text: str, relay_port: int, reinject_port: int) -> str:
    return re.sub(r"\b10025\b", str(relay_port), re.sub(r"\b10026\b", str(reinject_port), text))


def parse_main(text: str) -> dict[str, str]:
    """``name = value`` lines of a main.cf snippet (comments skipped, continuation lines joined)."""
    out: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and last is not None:
            out[last] += " " + line.strip()
            continue
        name, eq, value = line.partition("=")
        assert eq, f"not a main.cf parameter line: {line!r}"
        last = name.strip()
        out[last] = value.strip()
    return out


def parse_master(text: str) -> tuple[dict[str, str], str]:
    """(the ``-o`` options of the public ``smtp inet`` service, every other entry as master.cf text).

    The fixture's own public smtpd listens on a free port; a snippet's ``smtp inet``
    line is applied to it as its options.
    """
    entries: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            assert entries, f"continuation line before any service: {line!r}"
            entries[-1].append(line)
        else:
            entries.append([line])
    public: dict[str, str] = {}
    extra: list[str] = []
    for entry in entries:
        fields = entry[0].split()
        if fields[:2] == ["smtp", "inet"]:
            for option in " ".join(entry[1:]).split():
                if option == "-o":
                    continue
                name, _, value = option.partition("=")
                public[name] = value
        else:
            extra.extend(entry)
    return public, "\n".join(extra) + "\n"


# --------------------------------------------------------------------------- helpers


def message(name: str) -> bytes:
    return (CASES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def personal_data_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Alice Archer <{SENDER}>"
    msg["To"] = f"Bob Buyer <{EXTERNAL}>"
    msg["Subject"] = "New starter"
    msg["Message-ID"] = "<held-recipe@example.ac.uk>"
    msg.set_content("Hi Bob,\n\nThe new starter's details for the pension scheme:\n"
                    "NHS number: 943 476 5919\nNational Insurance number: JG 10 37 59 A\n\nBest wishes,\nAlice\n")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def _send(port: int, raw: bytes) -> tuple[int, str]:
    """Send one message; (code, text) of the final answer -- of MAIL/RCPT/DATA, whichever refused."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=WAIT + 30, start_tls=False,
                             local_hostname=CLIENT_HELO)
    await client.connect()
    try:
        errors, text = await client.sendmail(SENDER, [EXTERNAL], raw)
        assert not errors, errors
        return 250, text
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return exc.recipients[0].code, exc.recipients[0].message
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    finally:
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()


def send(port: int, raw: bytes) -> tuple[int, str]:
    return asyncio.run(_send(port, raw))


def held_list(quarantine: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["RELAY_QUARANTINE"] = quarantine
    result = subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", "list", "--json"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_until(predicate, timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    assert value, f"timed out after {timeout:g}s waiting for {what}"
    return value


def to(sink, rcpt: str) -> list:
    return [m for m in sink.messages if rcpt in m.rcpt_tos]


@pytest.fixture
def recipe(make_postfix, make_sink, start_relay, clamd, tmp_path):
    """``recipe("content_filter" | "proxy_filter", clamd_url=None)`` -> (postfix, relay, sink, quarantine URL)."""

    def build(name: str, clamd_url: str | None = None):
        sink = make_sink()
        reinject = free_port()
        quarantine = f"sqlite:///{tmp_path}/recipe-{name}.sqlite3"
        relay = start_relay(env={"RELAY_UPSTREAM": f"127.0.0.1:{reinject}", "RELAY_CLAMD": clamd_url or clamd,
                                 "RELAY_QUARANTINE": quarantine, "RELAY_UPSTREAM_TLS": "off"},
                            policy=POLICY.read_text(encoding="utf-8"))
        main = parse_main(substitute((RECIPES / name / "main.cf.snippet").read_text(), relay.port, reinject))
        public, extra = parse_master(substitute((RECIPES / name / "master.cf.snippet").read_text(),
                                                relay.port, reinject))
        postfix = make_postfix(relay_to=sink.port, main=main, smtpd_options=public, master_extra=extra)
        assert "warning" not in postfix.check(), postfix.check()
        return postfix, relay, sink, quarantine

    return build


def notices(sink, qid: str) -> list:
    """The relay's held-for-review notices to the sender naming ``qid``."""
    return [m for m in to(sink, SENDER) if b"Your message is held for review" in m.data and qid.encode() in m.data]


def decisions(relay, action: str) -> list[dict]:
    return [e for e in relay.events("decision") if e.get("action") == action]


# --------------------------------------------------------------------------- tests


def test_snippets_parse():
    for name in ("content_filter", "proxy_filter"):
        main = parse_main((RECIPES / name / "main.cf.snippet").read_text())
        public, extra = parse_master((RECIPES / name / "master.cf.snippet").read_text())
        assert "127.0.0.1:10026 inet" in extra
        assert "smtpd_authorized_xforward_hosts=127.0.0.0/8" in extra
        if name == "content_filter":
            assert main["content_filter"] == "policyrelay:[127.0.0.1]:10025"
            assert "policyrelay unix" in extra and "smtp_send_xforward_command=yes" in extra
        else:
            assert public["smtpd_proxy_filter"] == "127.0.0.1:10025"
            assert main["smtpd_proxy_options"] == "speed_adjust"


def test_after_queue_content_filter(recipe):
    postfix, relay, sink, quarantine = recipe("content_filter")

    # clean: queued by Postfix, filtered, reinjected, delivered to the sink with the relay's header
    code, _ = send(postfix.port, message("clean-with-antivirus.eml"))
    assert code == 250
    arrived = wait_until(lambda: to(sink, EXTERNAL), what="the clean message at the sink")
    assert len(arrived) == 1
    headers = message_from_bytes(arrived[0].data)
    assert headers["X-Policy-Action"] == "accept"
    assert headers["Message-ID"] == "<clean-with-antivirus@cases.example.ac.uk>"
    event = wait_until(lambda: decisions(relay, "accept"), what="the accept decision")[0]
    assert event["client"]["helo"] == CLIENT_HELO        # XFORWARD passed the original client, not Postfix

    # malware: Postfix accepted it (after-queue), the relay refused it, Postfix bounced it
    code, _ = send(postfix.port, message("eicar-attachment.eml"))
    assert code == 250
    bounced = postfix.wait_for_log(r"status=bounced .*550 5\.7\.1 .*\[rule malware, clause 5\.1\]", timeout=WAIT)
    assert EXTERNAL in bounced[0]
    dsn = wait_until(lambda: [m for m in to(sink, SENDER) if b"multipart/report" in m.data],
                     what="the bounce to the sender")
    assert dsn[0].mail_from in ("", "<>")
    report = message_from_bytes(dsn[0].data)
    assert report.get_content_type() == "multipart/report"
    assert "rule malware, clause 5.1" in dsn[0].data.decode("utf-8", "replace")
    assert len(to(sink, EXTERNAL)) == 1                       # still only the clean one
    # Postfix's own bounce did not pass the filter (internal_mail_filter_classes is empty)
    assert [e["envelope"]["mail_from"] for e in relay.events("decision")] == [SENDER, SENDER]

    # held: Postfix delivered it to the relay, which stored it and answered 250 held
    code, _ = send(postfix.port, personal_data_message())
    assert code == 250
    sent = postfix.wait_for_log(r"status=sent .*250 2\.0\.0 held for review q-[0-9a-z]{26}", timeout=WAIT)
    qid = re.search(r"q-[0-9a-z]{26}", sent[0]).group()
    rows = held_list(quarantine)
    assert [r["id"] for r in rows] == [qid]
    assert rows[0]["recipients"] == [EXTERNAL]
    assert "personal-data-external" in json.dumps(rows[0]["rules"])
    notice = wait_until(lambda: notices(sink, qid), what="the relay's notice to the sender")
    assert notice[0].mail_from in ("", "<>")
    wait_until(lambda: not postfix.queue_files(), what="Postfix's queue to empty")   # every delivery is done
    assert len(to(sink, EXTERNAL)) == 1                       # no copy of the held message went on
    assert len(sink.messages) == 3                            # the clean message, the bounce, the notice


def test_before_queue_proxy_filter(recipe):
    postfix, relay, sink, quarantine = recipe("proxy_filter")

    # clean: the client's 250 is the reinjection listener's ("queued as ..."), passed back through the relay
    code, text = send(postfix.port, message("clean-with-antivirus.eml"))
    assert code == 250, text
    assert "queued as" in text
    arrived = wait_until(lambda: to(sink, EXTERNAL), what="the clean message at the sink")
    assert len(arrived) == 1
    event = wait_until(lambda: decisions(relay, "accept"), what="the accept decision")[0]
    assert event["client"]["helo"] == CLIENT_HELO
    assert message_from_bytes(arrived[0].data)["X-Policy-Action"] == "accept"

    # malware: refused during the session, with the rule and the clause; no bounce, nothing queued
    code, text = send(postfix.port, message("eicar-attachment.eml"))
    assert code == 550, text
    assert text.startswith("5.7.1 ") and "[rule malware, clause 5.1]" in text

    # held: the client gets the relay's 250 with the quarantine id; Postfix never queues it
    code, text = send(postfix.port, personal_data_message())
    assert code == 250, text
    qid = re.search(r"held for review (q-[0-9a-z]{26})", text).group(1)
    rows = held_list(quarantine)
    assert [r["id"] for r in rows] == [qid]
    assert "personal-data-external" in json.dumps(rows[0]["rules"])

    # the shipped rule notifies the sender: the relay sends that notice through the reinjection listener
    wait_until(lambda: notices(sink, qid), what="the relay's notice to the sender")
    wait_until(lambda: not postfix.queue_files(), what="Postfix's queue to empty")   # every delivery is done
    assert len(to(sink, EXTERNAL)) == 1                         # only the clean one: no held copy
    assert len(sink.messages) == 2                              # and the notice; no DSN
    assert "status=bounced" not in postfix.log()


def test_clamd_down_after_queue_defers(recipe, clamd_down):
    postfix, relay, sink, _ = recipe("content_filter", clamd_url=clamd_down)
    code, _ = send(postfix.port, message("clean-with-antivirus.eml"))
    assert code == 250                                          # Postfix has it, and keeps it
    deferred = postfix.wait_for_log(r"status=deferred .*451 4\.7\.1 .*\[rule scanner-unavailable, clause 5\.1\]",
                                    timeout=WAIT)
    assert EXTERNAL in deferred[0]
    assert postfix.queue_files("deferred") or postfix.queue_files("active")
    assert sink.messages == []


def test_clamd_down_before_queue_tempfails_the_client(recipe, clamd_down):
    postfix, relay, sink, _ = recipe("proxy_filter", clamd_url=clamd_down)
    code, text = send(postfix.port, message("clean-with-antivirus.eml"))
    assert code == 451, text                                    # the client keeps it and retries
    assert "[rule scanner-unavailable, clause 5.1]" in text
    assert not postfix.queue_files()
    assert sink.messages == []
