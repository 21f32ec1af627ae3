"""`relay sink`: the capture server stores each message byte for byte in a Maildir."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import aiosmtplib

from tests.fixtures.common import free_port
from tests.fixtures.smtp import ROOT, wait_for_greeting

MSG = b"Subject: s\r\n\r\n.dot\r\n8bit \xe9\r\n" + b"L" * 4000 + b"\r\n"


def test_sink_stores_messages_byte_exact_with_their_envelope(tmp_path):
    port = free_port()
    maildir = tmp_path / "outbox"
    proc = subprocess.Popen([sys.executable, "-m", "relay.cli", "sink", "--listen", f"127.0.0.1:{port}",
                             "--maildir", str(maildir)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_greeting("127.0.0.1", port, proc=proc)

        async def send():
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20, start_tls=False)
            await smtp.connect()
            answer = await smtp.sendmail("", ["bob@example.org", "carol@example.org"], MSG,
                                         mail_options=["BODY=8BITMIME"])
            await smtp.quit()
            return answer

        answer = asyncio.run(asyncio.wait_for(send(), 30))
        assert answer[1] == "2.0.0 OK captured"
        [stored] = list((maildir / "new").iterdir())
        assert stored.read_bytes() == MSG
        meta = json.loads((maildir / "envelopes" / f"{stored.name}.json").read_text())
        assert meta == {"mail_from": "<>", "rcpt_tos": ["bob@example.org", "carol@example.org"],
                        "mail_options": [f"SIZE={len(MSG)}", "BODY=8BITMIME"], "size": len(MSG)}
        assert list((maildir / "tmp").iterdir()) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
