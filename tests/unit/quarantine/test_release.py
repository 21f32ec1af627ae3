"""Release outcomes with a fake next hop (relay/quarantine/release.py).

The real next hop is used in tests/integration/test_quarantine_release.py; a fake
is used here only for what a real one cannot show: a process that dies after
the next hop said 250 but before the outcome is committed.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import structlog

from relay.errors import AlreadyHandled, StoreError, UpstreamRejected
from relay.quarantine import open_store
from relay.quarantine import release as actions
from relay.replies import Reply


class Died(BaseException):
    """Stands for the process being killed at that point."""


def test_release_reports_the_next_hop_reply_and_logs_without_body(tmp_path, make_decision, make_settings):
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    decision = make_decision()
    sent = []

    async def deliver(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        sent.append((mail_from, tuple(rcpt_tos), data, tuple(mail_options)))
        return Reply(250, "2.0.0", "Ok: queued as ABC")

    async def go():
        async with open_store(url) as store:
            qid = await store.hold(decision, decision.message.raw)
            with structlog.testing.capture_logs() as logs:
                done = await actions.release(store, make_settings(), qid, "rev", "fine", deliver=deliver)
            return done, logs

    done, logs = asyncio.run(go())
    # the stored original, tagged like forwarded mail (no DKIM key in these settings)
    rules = ", ".join(r["id"] for r in done.message.rules)
    tags = f"X-Policy-Action: tag\r\nX-Policy-Rules: {rules}\r\n".encode()
    assert sent == [("alice@example.ac.uk", ("bob@example.org",), tags + decision.message.raw, ())]
    assert done.reply == "250 2.0.0 Ok: queued as ABC"
    assert "Ok: queued as ABC" in done.message.history[-1].note
    assert [e["event"] for e in logs] == ["quarantine.release"]
    assert "Hello" not in repr(logs)


def test_a_death_after_the_data_leaves_it_uncertain_and_only_force_sends_again(tmp_path, make_decision,
                                                                              make_settings):
    """The relay dies after the next hop's 250, before the commit: once the claim's lease is over the message
    is release_uncertain, a plain release refuses, and only --force (logged) sends a second copy."""
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    decision = make_decision()
    sent = []

    async def deliver_then_die(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        progress.data_sent = True
        sent.append(data)
        raise Died()

    async def deliver(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        progress.data_sent = True
        sent.append(data)
        return Reply(250, "2.0.0", "Ok")

    async def go():
        async with open_store(url, lease=0.2) as store:
            qid = await store.hold(decision, decision.message.raw)
            with pytest.raises(Died):
                await actions.release(store, make_settings(), qid, "rev1", deliver=deliver_then_die)
            with pytest.raises(AlreadyHandled, match="being released"):   # within the lease
                await actions.release(store, make_settings(), qid, "rev2", deliver=deliver)
            await asyncio.sleep(0.3)
            uncertain = await store.get(qid)
            with pytest.raises(AlreadyHandled, match="--force") as refused:
                await actions.release(store, make_settings(), qid, "rev2", deliver=deliver)
            with structlog.testing.capture_logs() as logs:
                done = await actions.release(store, make_settings(), qid, "rev2", deliver=deliver, force=True)
            return uncertain, str(refused.value), done, logs

    uncertain, refused, done, logs = asyncio.run(go())
    assert uncertain.status == "release_uncertain"
    assert uncertain.history[-1].action == "release_uncertain" and "outlived its lease" in uncertain.history[-1].note
    assert "may already have reached the next hop" in refused
    assert done.message.status == "released"
    assert "duplicate is possible" in done.message.history[-2].note          # the forced claim
    forced = [e for e in logs if e["event"] == "quarantine.release_forced"]
    assert forced and forced[0]["reviewer"] == "rev2" and forced[0]["sha256"] == done.message.sha256
    assert len(sent) == 2   # the second copy only because a reviewer forced it


@pytest.mark.parametrize("failure", ["lost", "timeout"])
def test_no_answer_after_the_data_is_uncertain_but_a_refusal_after_it_stays_held(
        tmp_path, make_decision, make_settings, monkeypatch, failure):
    from relay.errors import UpstreamUnavailable

    monkeypatch.setattr(actions, "MIN_DELIVERY_BUDGET", 0.05)
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    decision = make_decision()

    async def no_answer(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        progress.data_sent = True
        if failure == "timeout":
            await asyncio.sleep(30)     # the budget cancels it
        raise UpstreamUnavailable("next hop failed during DATA: connection lost")

    async def refused_at_the_dot(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        progress.data_sent = True
        raise UpstreamRejected(554, "5.7.1 no")

    async def go():
        async with open_store(url, lease=0.1) as store:
            qid = await store.hold(decision, decision.message.raw)
            with structlog.testing.capture_logs() as logs, pytest.raises(actions.ReleaseUncertain):
                await actions.release(store, make_settings(), qid, "rev", deliver=no_answer)
            uncertain = await store.get(qid)
            with pytest.raises(AlreadyHandled, match="release_uncertain"):
                await actions.release(store, make_settings(), qid, "rev", deliver=no_answer)
            other = await store.hold(decision, decision.message.raw)
            with pytest.raises(UpstreamRejected):
                await actions.release(store, make_settings(), other, "rev", deliver=refused_at_the_dot)
            deleted = await actions.delete(store, qid, "rev", "found in the next hop's log")
            return uncertain, await store.get(other), deleted, logs

    uncertain, other, deleted, logs = asyncio.run(go())
    assert uncertain.status == "release_uncertain" and "may have the message" in uncertain.history[-1].note
    assert [e["event"] for e in logs] == ["quarantine.release_uncertain"]
    assert other.status == "held"
    assert deleted.status == "deleted"


def test_refusal_goes_back_to_held_and_corrupt_bytes_are_never_sent(tmp_path, make_decision, make_settings):
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    decision = make_decision()
    sent = []

    async def refuse(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        sent.append(data)
        raise UpstreamRejected(554, "5.7.1 policy says no")

    async def go():
        async with open_store(url) as store:
            qid = await store.hold(decision, decision.message.raw)
            with structlog.testing.capture_logs() as logs, pytest.raises(UpstreamRejected):
                await actions.release(store, make_settings(), qid, "rev", deliver=refuse)
            after = await store.get(qid)
            with sqlite3.connect(tmp_path / "q.sqlite3") as conn:  # the disk (or someone) changed the bytes
                conn.execute("UPDATE held_raw SET raw = ? WHERE id = ?", (b"tampered", qid))
            conn.close()
            with pytest.raises(StoreError, match="SHA-256"):
                await actions.release(store, make_settings(), qid, "rev", deliver=refuse)
            with pytest.raises(StoreError, match="not exported"):
                await actions.export(store, qid, "rev")
            return after, await store.get(qid), logs

    after, corrupt, logs = asyncio.run(go())
    assert after.status == "held" and "554 5.7.1 policy says no" in after.history[-1].note
    assert [e["event"] for e in logs] == ["quarantine.release_failed"]
    assert corrupt.status == "held" and "SHA-256" in corrupt.history[-2].note  # then the refused export
    assert len(sent) == 1


def test_default_reviewer_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("USER", "jo\x1bbloggs")
    assert actions.default_reviewer() == "jo\\x1bbloggs"


def test_a_delivery_that_outlasts_its_budget_is_abandoned_and_stays_held(tmp_path, make_decision, make_settings,
                                                                          monkeypatch):
    from relay.errors import UpstreamUnavailable

    monkeypatch.setattr(actions, "MIN_DELIVERY_BUDGET", 0.05)
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    decision = make_decision()

    async def stuck(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        await asyncio.sleep(30)  # a next hop that never answers (cancelled by the budget)

    async def go():
        async with open_store(url, lease=0.1) as store:
            qid = await store.hold(decision, decision.message.raw)
            with pytest.raises(UpstreamUnavailable, match="took longer"):
                await actions.release(store, make_settings(), qid, "rev", deliver=stuck)
            return await store.get(qid)

    msg = asyncio.run(go())
    assert msg.status == "held" and "took longer" in msg.history[-1].note


def test_a_failure_preparing_the_copy_goes_back_to_held_with_a_note_and_sends_nothing(
        tmp_path, make_decision, make_settings):
    """Tagging and signing run after the claim: a DKIM key unreadable since the relay started
    (ConfigError, not an UpstreamError) must not leave the message 'releasing' for the lease."""
    from relay.errors import ConfigError

    url = f"sqlite:///{tmp_path}/q.sqlite3"
    decision = make_decision()
    key = tmp_path / "dkim.pem"
    key.write_text("not a PEM key\n")
    settings = make_settings(dkim_domain="example.ac.uk", dkim_selector="s1", dkim_key=str(key))
    sent = []

    async def deliver(settings, mail_from, rcpt_tos, data, mail_options=(), progress=None):
        sent.append(data)
        return Reply(250, "2.0.0", "Ok")

    async def go():
        async with open_store(url, lease=600) as store:
            qid = await store.hold(decision, decision.message.raw)
            with structlog.testing.capture_logs() as logs, pytest.raises(ConfigError):
                await actions.release(store, settings, qid, "rev", deliver=deliver)
            return await store.get(qid), logs

    msg, logs = asyncio.run(go())
    assert sent == []
    assert msg.status == "held"
    assert msg.history[-1].note == "not sent: ConfigError"
    assert [e["reason"] for e in logs if e["event"] == "quarantine.release_failed"] == ["not sent: ConfigError"]

