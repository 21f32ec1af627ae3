"""The milter front: an asyncio server, one :class:`MilterSession` per MTA connection.

The MTA (Postfix ``smtpd_milters``, Sendmail ``INPUT_MAIL_FILTER``) opens one
connection per SMTP session and drives it with the commands decoded by
:mod:`relay.milter.protocol`. A session keeps connection state (negotiated
options, client address and name, HELO, macros) apart from transaction state
(:class:`Transaction`: sender, recipients, header fields, body), rebuilds the
message as the MTA received it (header fields as ``name:value`` with CRLF,
folded lines back to CRLF, the body chunks as sent, already CRLF), and at end
of body runs the same :class:`~relay.pipeline.Pipeline` as ``relay serve``
and answers with :func:`relay.milter.act.act`.

Bounds: ``max_sessions`` connections (past it a new one is closed at once:
the MTA applies its ``milter_default_action``); ``command_timeout`` of
silence closes a connection; ``max_recipients`` (``452 4.5.3`` to the extra
RCPT); ``max_header_size`` and ``max_message_size`` counted while fields and
body chunks arrive (``552 5.3.4`` at the first chunk past the cap, nothing
kept past it); a malformed, unknown or oversized packet closes the connection
with a ``milter.protocol_error`` log event. While the pipeline runs,
``SMFIR_PROGRESS`` goes out every ``PROGRESS_INTERVAL`` seconds so a slow
scan does not hit the MTA's ``milter_content_timeout`` early; deciding and
acting are bounded by :func:`decision_deadline`, past which the relay answers
``451 4.3.0`` itself (``replies.DEADLINE_PASSED``), so only a blocked process ever
reaches the MTA's timeout. Only the MTA's address is checked against
``allowed_clients`` (unix sockets: by file mode).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import structlog

from relay import metrics, replies
from relay.config import Settings
from relay.envelope import Envelope
from relay.log import decision_event
from relay.milter import act as act_mod
from relay.milter import protocol as p
from relay.quarantine import notify
from relay.verdict import Action
from relay.replies import Reply

log = structlog.get_logger("relay.milter")

PROGRESS_INTERVAL = 10.0
READ_SIZE = 65536
# Parsing, the policy and DKIM signing have no timeout of their own: CPU work of well under a
# second each on a message within max_message_size; the rest of the margin is scheduling slack.
DEADLINE_MARGIN = 10.0


def decision_deadline(settings: Settings, store=None) -> float:
    """How long deciding and acting on one message may take before the relay answers 451 itself.

    The stages' own bounds, one after the other as the pipeline runs them: text extraction
    (``extract_timeout``), the scanners (``scan_timeout``; they run side by side), then the
    quarantine write when there is a store (the store's ``hold_timeout``, 60 s for both backends),
    plus ``DEADLINE_MARGIN``. 150 s with the default settings: under Postfix's
    ``milter_content_timeout`` and Sendmail's ``T=E:`` (both 300 s by default), which only a
    blocked process then reaches (``deploy/postfix/milter.md``).
    """
    store_bound = store.hold_timeout if store is not None else 0.0
    return settings.extract_timeout + settings.scan_timeout + store_bound + DEADLINE_MARGIN


@dataclass(slots=True)
class Transaction:
    """One message: MAIL to end of body (or abort)."""

    sender: bytes
    args: tuple[str, ...]
    recipients: list[tuple[str, bytes]] = field(default_factory=list)   # (address, bytes as sent in RCPT)
    head: list[bytes] = field(default_factory=list)
    head_size: int = 0
    body: list[bytes] = field(default_factory=list)
    size: int = 0
    refused: Reply | None = None
    started: float = field(default_factory=time.perf_counter)

    def raw(self) -> bytes:
        return b"".join(self.head) + b"\r\n" + b"".join(self.body)


def unbracket(address: bytes) -> str:
    text = address.decode("utf-8", "replace").strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text


def header_line(name: bytes, value: bytes, leading_space: bool) -> bytes:
    """One received header field as it stood in the message: ``name:value`` and CRLF, folds as CRLF."""
    if not leading_space and value:
        value = b" " + value
    if b"\n" in value or b"\r" in value:
        value = value.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return name + b":" + value + b"\r\n"


class MilterServer:
    """What every session of one process shares."""

    def __init__(self, settings: Settings, pipeline, *, store=None, signer=None) -> None:
        self.settings = settings
        self.background: set[asyncio.Task] = set()   # sender notices in flight
        self.pipeline = pipeline
        self.store = store
        self.signer = signer
        self.sessions: set[MilterSession] = set()
        self.draining = False
        self.deadline = decision_deadline(settings, store)

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = MilterSession(self, reader, writer)
        if self.draining or len(self.sessions) >= self.settings.max_sessions:
            session.log.warning("milter.refused", reason="draining" if self.draining else "too many connections",
                                sessions=len(self.sessions))
            await session.close()
            return
        peer = session.peer
        if peer and not self.settings.allows(peer):
            session.log.warning("milter.refused", reason="address not in allowed_clients")
            await session.close()
            return
        self.sessions.add(session)
        metrics.SESSIONS_OPEN.inc()
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            metrics.SESSIONS_OPEN.dec()

    def drain(self) -> None:
        """Stop taking work: close idle sessions now, busy ones after their message."""
        self.draining = True
        for session in list(self.sessions):
            if not session.busy:
                session.abort()


class MilterSession:
    def __init__(self, server: MilterServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        self.session_id = secrets.token_hex(6)
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else ""
        self.log = log.bind(session_id=self.session_id, front="milter", mta=self.peer or "unix")
        self.decoder = p.Decoder()
        self.agreed: p.Negotiated | None = None
        self.client_address = ""
        self.client_name = ""
        self.helo = ""
        self.macros: dict[str, str] = {}
        self.tx: Transaction | None = None
        self.deciding = False

    @property
    def busy(self) -> bool:
        return self.tx is not None or self.deciding

    # ---------------------------------------------------------------- I/O

    def abort(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def close(self) -> None:
        self.abort()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def send(self, *packets: bytes) -> None:
        self.writer.write(b"".join(packets))
        await self.writer.drain()

    async def run(self) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.command_timeout):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    self.log.info("milter.timeout", timeout=self.settings.command_timeout)
                    return
                if not data:
                    return
                for packet in self.decoder.feed(data):
                    if not await self.handle(packet):
                        return
                if self.server.draining and not self.busy:
                    return
        except p.ProtocolError as exc:
            self.log.warning("milter.protocol_error", error=str(exc))
        except (ConnectionError, OSError) as exc:
            self.log.info("milter.connection_lost", error=type(exc).__name__)
        finally:
            if self.tx is not None:
                self.log.info("milter.transaction_abandoned")
            await self.close()

    # ---------------------------------------------------------------- commands

    async def handle(self, packet: p.Packet) -> bool:
        """Act on one packet; False to close the connection."""
        event = p.parse(packet)
        if self.agreed is None:
            if not isinstance(event, p.OptNeg):
                raise p.ProtocolError(f"command 0x{packet.command.hex()} before option negotiation")
            self.agreed = p.negotiate(event)
            await self.send(p.encode_optneg(self.agreed))
            return True
        answer: bytes | None = None
        match event:
            case p.Macros(values=values):
                self.macros.update(values)
                return True
            case p.Connect():
                self.client_name = "" if event.hostname.startswith("[") or event.hostname == "unknown" \
                    else event.hostname
                self.client_address = event.address if event.family in "46" else ""
            case p.Helo(name=name):
                self.helo = name
            case p.Mail():
                self.tx = Transaction(event.sender, event.args)
            case p.Rcpt():
                answer = self.on_rcpt(event)
            case p.Header():
                self.on_header(event)
            case p.Body(chunk=chunk):
                self.on_body(chunk)
            case p.EndOfBody(chunk=chunk):
                if chunk:
                    self.on_body(chunk)
                await self.on_end_of_body()
                return not self.server.draining
            case p.Abort():
                self.tx = None
                return True
            case p.Quit(new_connection=new):
                if not new:
                    return False
                self.tx = None
                self.macros.clear()
                self.client_address = self.client_name = self.helo = ""
                return True
            case p.OptNeg():
                raise p.ProtocolError("option negotiation repeated")
            case _:
                pass                    # end of headers, DATA, unknown command: nothing to do
        if self.agreed.replies_to(packet.command):
            if answer is None and self.tx is not None and self.tx.refused is not None:
                answer = p.encode_replycode(str(self.tx.refused))
            await self.send(answer or p.encode_continue())
        return True

    def _transaction(self, what: str) -> Transaction:
        if self.tx is None:
            raise p.ProtocolError(f"{what} outside a transaction")
        return self.tx

    def on_rcpt(self, event: p.Rcpt) -> bytes | None:
        tx = self._transaction("RCPT")
        if len(tx.recipients) >= self.settings.max_recipients:
            return p.encode_replycode(str(replies.TOO_MANY_RECIPIENTS))
        tx.recipients.append((unbracket(event.recipient), event.recipient))
        return None

    def on_header(self, event: p.Header) -> None:
        tx = self._transaction("header")
        if tx.refused is not None:
            return
        line = header_line(event.name, event.value, self.agreed.leading_space)
        tx.head_size += len(line)
        tx.size += len(line)
        if tx.head_size > self.settings.max_header_size:
            self.refuse(tx, replies.HEADER_EXCEEDED)
        else:
            tx.head.append(line)

    def on_body(self, chunk: bytes) -> None:
        tx = self._transaction("body")
        tx.size += len(chunk)
        if tx.refused is not None:
            return
        if tx.size + 2 > self.settings.max_message_size:
            self.refuse(tx, replies.SIZE_EXCEEDED)
        else:
            tx.body.append(chunk)

    def refuse(self, tx: Transaction, reply: Reply) -> None:
        """Refuse the message while it arrives: drop what was kept, log its one decision event."""
        tx.refused = reply
        tx.head.clear()
        tx.body.clear()
        envelope = self.envelope(tx)
        self.log_decision(envelope, tx.size, None, reply, action="refused", error=reply.text)

    # ---------------------------------------------------------------- end of body

    def envelope(self, tx: Transaction) -> Envelope:
        address = self.macros.get("{client_addr}") or self.client_address
        return Envelope(
            mail_from=unbracket(tx.sender),
            rcpt_tos=tuple(r for r, _ in tx.recipients),
            client_address=address,
            client_name=self.client_name,
            helo=self.helo,
            mail_options=tx.args,
            smtputf8=any(a.upper() == "SMTPUTF8" for a in tx.args),
        )

    async def on_end_of_body(self) -> None:
        tx = self._transaction("end of body")
        self.tx = None
        if tx.refused is not None:
            await self.send(p.encode_replycode(str(tx.refused)))
            return
        raw = tx.raw()
        tx.head.clear()
        tx.body.clear()
        envelope = self.envelope(tx)
        received = time.perf_counter() - tx.started
        started = time.perf_counter()
        decision = None
        outcome = act_mod.Outcome((p.encode_tempfail(),))
        self.deciding = True
        keepalive = asyncio.create_task(self._keepalive())
        deadline = asyncio.timeout(self.server.deadline)
        try:
            async with deadline:
                decision = await self.server.pipeline.decide(envelope, raw)
                outcome = await act_mod.act(decision, envelope, raw, tx.recipients, self.settings,
                                            store=self.server.store, signer=self.server.signer,
                                            leading_space=self.agreed.leading_space)
        except Exception as exc:  # noqa: BLE001 - anything unexpected: 451, traceback logged, nothing lost
            if deadline.expired():
                # Stuck past every stage's own bound: 451 now (the MTA keeps the message) rather
                # than the MTA's milter timeout later. A hold may have become durable meanwhile:
                # the retry then leaves a second copy in the quarantine, never a lost one.
                self.log.warning("milter.deadline", deadline=self.server.deadline,
                                 stage="decide" if decision is None else "act")
                outcome = act_mod.refuse(replies.DEADLINE_PASSED, error="deadline")
            else:
                self.log.error("message.error", error=type(exc).__name__, exc_info=exc)
                outcome = act_mod.refuse(replies.INTERNAL_ERROR, error=type(exc).__name__)
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            self.deciding = False
        try:
            await self.send(*outcome.packets)
        finally:
            self.log_decision(
                envelope, len(raw), decision, outcome.reply,
                action="" if decision is not None and not outcome.error else "error",
                quarantine_id=outcome.quarantine_id, recipients=outcome.recipients, error=outcome.error,
                timings={"receive": received, "act": time.perf_counter() - started
                         - (decision.timings.get("total", 0.0) if decision else 0.0)})
        if decision is not None:
            metrics.observe_decision(decision, len(raw))
            notify.schedule(self.settings, decision, outcome.quarantine_id,
                            decision.verdict.action is Action.REJECT and not outcome.error, self.server.background)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            await self.send(p.encode_progress())

    def log_decision(self, envelope: Envelope, size: int, decision, reply: Reply | None, **fields) -> None:
        client = {"address": envelope.client_address, "name": envelope.client_name, "helo": envelope.helo,
                  "peer": self.peer}
        event = decision_event(message_id=secrets.token_hex(8), session_id=self.session_id, client=client,
                               mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos, size=size,
                               decision=decision, reply=reply, **fields)
        queue_id = self.macros.get("i", "")
        if queue_id:
            event["queue_id"] = queue_id[:32]
        log.info("decision", front="milter", **event)

