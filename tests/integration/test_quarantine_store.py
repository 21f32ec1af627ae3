"""The quarantine store contract, run the same on SQLite and on a real PostgreSQL (fixture ``quarantine_url``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys

import pytest

from relay.errors import AlreadyHandled, NotFound, StoreUnavailable
from relay.quarantine import open_store
from relay.quarantine.store import EXPIRED_NOTE, ID_RE, Filter, sha256, utcnow

HOSTILE_IDS = [
    "", "../../etc/passwd", "'; DROP TABLE held; --", "q-" + "a" * 10_000, "q-" + "A" * 26, "q-" + "u" * 26,
    "q-" + "0" * 25, "q-" + "0" * 27, " q-" + "0" * 26, "q-" + "0" * 26 + "\n", "q-%" + "0" * 25, None, 42,
]


def run(coro):
    return asyncio.run(coro)


def test_hold_keeps_everything(quarantine_url, make_decision, make_message):
    raw = make_message(body="Invoice attached.\n", subject="Invoice")
    decision = make_decision(raw, rcpt_tos=("bob@example.org", "carol@example.net"), mail_options=("BODY=8BITMIME",))

    async def go():
        async with open_store(quarantine_url) as store:
            qid = await store.hold(decision, raw, recipients=["carol@example.net"])
            return qid, await store.get(qid), await store.raw(qid)

    qid, msg, stored = run(go())
    assert ID_RE.fullmatch(qid)
    assert stored == raw
    assert msg.sha256 == sha256(raw) and msg.size == len(raw)
    assert msg.status == "held"
    assert msg.mail_from == "alice@example.ac.uk"
    assert msg.recipients == ("carol@example.net",)
    assert msg.mail_options == ("BODY=8BITMIME",)
    assert (msg.client_address, msg.helo) == ("192.0.2.10", "client.example.ac.uk")
    assert msg.action == "hold" and msg.policy_version == "test-1"
    assert msg.rules[0]["id"] == "personal-data-external" and msg.rules[0]["clause"] == "5.2"
    assert msg.findings[0]["type"] == "uk_nino" and msg.findings[0]["evidence"] == "AB •• •• •• C"
    assert msg.subject == "Invoice"
    assert [h.action for h in msg.history] == ["held"]
    assert abs((msg.held_at - utcnow()).total_seconds()) < 300
    json.dumps(msg.as_dict())  # serialisable for --json


def test_hold_without_recipients_keeps_all_envelope_recipients(quarantine_url, make_decision):
    decision = make_decision(rcpt_tos=("a@example.org", "b@example.org"))

    async def go():
        async with open_store(quarantine_url) as store:
            return await store.get(await store.hold(decision, decision.message.raw))

    assert run(go()).recipients == ("a@example.org", "b@example.org")


def test_a_new_connection_and_a_new_process_see_a_hold(quarantine_url, make_decision):
    decision = make_decision()

    async def hold():
        async with open_store(quarantine_url) as store:
            return await store.hold(decision, decision.message.raw)

    qid = run(hold())

    async def read():
        async with open_store(quarantine_url) as store:
            return await store.raw(qid)

    assert run(read()) == decision.message.raw
    code = (
        "import asyncio, sys\nfrom relay.quarantine import open_store\n"
        "async def main():\n    async with open_store(sys.argv[1]) as s:\n"
        "        m = await s.get(sys.argv[2]); print(m.status, m.sha256)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, quarantine_url, qid], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["held", sha256(decision.message.raw)]


def test_list_filters(quarantine_url, make_decision):
    a = make_decision(mail_from="alice@example.ac.uk", rcpt_tos=("bob@partner.example",),
                      rules=(("pd-external", "5.2", "Personal data"),))
    b = make_decision(mail_from="dave_x@example.ac.uk", rcpt_tos=("erin@other.example",),
                      rules=(("macro", "5.1", "Macro"), ("pd-external", "5.2", "Personal data")))

    async def go():
        async with open_store(quarantine_url) as store:
            qa = await store.hold(a, a.message.raw)
            qb = await store.hold(b, b.message.raw)
            await store.delete(qa, "tester")
            ids = lambda rows: {r.id for r in rows}  # noqa: E731
            now = utcnow()
            got = {
                "all": ids(await store.list()),
                "rule pd": ids(await store.list(Filter(rule="pd-external"))),
                "rule macro": ids(await store.list(Filter(rule="macro"))),
                "rule prefix": ids(await store.list(Filter(rule="pd"))),
                "sender": ids(await store.list(Filter(sender="ALICE@"))),
                "sender wildcard": ids(await store.list(Filter(sender="%"))),
                "sender underscore": ids(await store.list(Filter(sender="d_ve"))),
                "recipient": ids(await store.list(Filter(recipient="other.example"))),
                "status held": ids(await store.list(Filter(status="held"))),
                "status deleted": ids(await store.list(Filter(status="deleted"))),
                "since future": ids(await store.list(Filter(since=now + dt.timedelta(hours=1)))),
                "since past": ids(await store.list(Filter(since=now - dt.timedelta(hours=1)))),
                "until past": ids(await store.list(Filter(until=now - dt.timedelta(hours=1)))),
                "limit": len(await store.list(Filter(limit=1))),
            }
            first = (await store.list())[0]
            return qa, qb, got, first

    qa, qb, got, first = run(go())
    assert got["all"] == {qa, qb}
    assert got["rule pd"] == {qa, qb}
    assert got["rule macro"] == {qb}
    assert got["rule prefix"] == set()
    assert got["sender"] == {qa}
    assert got["sender wildcard"] == set()
    assert got["sender underscore"] == set()  # "_" is literal, not LIKE's any-character
    assert got["recipient"] == {qb}
    assert got["status held"] == {qb}
    assert got["status deleted"] == {qa}
    assert got["since future"] == set() and got["since past"] == {qa, qb} and got["until past"] == set()
    assert got["limit"] == 1
    assert first.id == qb  # newest first
    assert first.rule_ids == ("macro", "pd-external")


def test_claim_release_and_already_handled(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            qid = await store.hold(decision, decision.message.raw)
            claim = await store.claim(qid, "rev1")
            assert claim.raw == decision.message.raw and claim.message.status == "releasing"
            with pytest.raises(AlreadyHandled, match="being released"):
                await store.claim(qid, "rev2")
            with pytest.raises(AlreadyHandled, match="being released"):
                await store.delete(qid, "rev2")
            done = await store.finish_release(claim, "rev1", "next hop: 250 ok")
            with pytest.raises(AlreadyHandled, match="already released"):
                await store.claim(qid, "rev2")
            with pytest.raises(AlreadyHandled, match="already released"):
                await store.delete(qid, "rev2")
            return done, await store.raw(qid)

    done, raw = run(go())
    assert done.status == "released"
    assert [h.action for h in done.history] == ["held", "release_claimed", "released"]
    assert done.history[-1].actor == "rev1" and "250 ok" in done.history[-1].note
    assert raw == decision.message.raw  # released mail keeps its bytes until purged


def test_abandoned_release_goes_back_to_held(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            qid = await store.hold(decision, decision.message.raw)
            claim = await store.claim(qid, "rev1")
            back = await store.abandon_release(claim, "rev1", "next hop refused: 550 no")
            again = await store.claim(qid, "rev2")
            uncertain = await store.mark_uncertain(again, "rev2", "no answer after the data")
            with pytest.raises(AlreadyHandled, match="may already have reached the next hop"):
                await store.claim(qid, "rev3")
            counted = await store.count("release_uncertain")
            deleted = await store.delete(qid, "rev3", "found in the next hop's log")
            return back, again, uncertain, counted, deleted, await store.check()

    back, again, uncertain, counted, deleted, problems = run(go())
    assert back.status == "held"
    assert back.history[-1].action == "release_failed" and "550" in back.history[-1].note
    assert again.message.status == "releasing"
    assert uncertain.status == "release_uncertain" and uncertain.history[-1].action == "release_uncertain"
    assert counted == 1 and deleted.status == "deleted" and problems == []


def test_concurrent_claims_give_exactly_one_winner(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as s1, open_store(quarantine_url) as s2:
            qid = await s1.hold(decision, decision.message.raw)
            tries = [s.claim(qid, f"rev{i}") for i in range(5) for s in (s1, s2)]
            return await asyncio.gather(*tries, return_exceptions=True)

    results = run(go())
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyHandled) for r in results if r not in winners)


def test_an_expired_claim_becomes_uncertain_and_only_a_forced_claim_takes_it(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url, lease=0.05) as store:
            qid = await store.hold(decision, decision.message.raw)
            slow = await store.hold(decision, decision.message.raw)
            stale = await store.claim(qid, "crashed")
            slow_claim = await store.claim(slow, "slow")
            await asyncio.sleep(0.3)
            listed = {r.id: r.status for r in await store.list()}
            with pytest.raises(AlreadyHandled, match="release_uncertain"):
                await store.claim(qid, "rev2")
            fresh = await store.claim(qid, "rev2", force=True)
            with pytest.raises(AlreadyHandled, match="outlived its lease"):
                await store.finish_release(stale, "crashed", "late")
            # nobody forced the other one: its slow releaser can still record the next hop's answer
            late = await store.finish_release(slow_claim, "slow", "next hop: 250 late")
            return listed, fresh, await store.finish_release(fresh, "rev2", "ok"), late

    listed, fresh, done, late = run(go())
    assert set(listed.values()) == {"release_uncertain"} and fresh.previous == "release_uncertain"
    assert done.status == "released" and late.status == "released"
    actions = [(h.actor, h.action, h.note) for h in done.history]
    assert ("relay", "release_uncertain", EXPIRED_NOTE) in actions
    assert ("rev2", "release_claimed", "forced over an uncertain release: a duplicate is possible") in actions


def test_delete_removes_the_bytes_and_keeps_the_record(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            qid = await store.hold(decision, decision.message.raw)
            gone = await store.delete(qid, "rev", "spam")
            with pytest.raises(NotFound, match="gone"):
                await store.raw(qid)
            with pytest.raises(AlreadyHandled, match="already deleted"):
                await store.claim(qid, "rev")
            return gone, await store.check()

    gone, problems = run(go())
    assert gone.status == "deleted" and gone.sha256 == sha256(decision.message.raw)
    assert gone.history[-1].action == "deleted" and gone.history[-1].note == "spam"
    assert problems == []


def test_purge_removes_old_records_and_bytes_but_not_live_claims(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            ids = [await store.hold(decision, decision.message.raw) for _ in range(3)]
            await store.delete(ids[0], "rev")
            await store.claim(ids[2], "rev")  # a release in flight
            assert await store.purge(utcnow() - dt.timedelta(days=1), "rev") == []
            purged = await store.purge(utcnow() + dt.timedelta(seconds=5), "rev")
            for qid in ids[:2]:
                with pytest.raises(NotFound):
                    await store.get(qid)
                with pytest.raises(NotFound):
                    await store.raw(qid)
            return ids, purged, [r.id for r in await store.list()], await store.check()

    ids, purged, left, problems = run(go())
    assert [(p.id, p.status) for p in purged] == [(ids[0], "deleted"), (ids[1], "held")]
    assert all(p.sha256 == sha256(decision.message.raw) for p in purged)
    assert left == [ids[2]]
    assert problems == []


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=lambda v: repr(v)[:20])
def test_malformed_ids_are_refused_before_any_use(quarantine_url, make_decision, bad):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            qid = await store.hold(decision, decision.message.raw)
            for op in (store.get, store.raw, lambda i: store.claim(i, "r"), lambda i: store.delete(i, "r"),
                       lambda i: store.note(i, "r", "reveal")):
                with pytest.raises(NotFound, match="not a quarantine id") as info:
                    await op(bad)
                assert len(str(info.value)) < 200
            return qid, [r.id for r in await store.list()], await store.check(), await store.get(qid)

    qid, left, problems, msg = run(go())
    assert left == [qid] and problems == []
    assert msg.status == "held" and [h.action for h in msg.history] == ["held"]


def test_unknown_well_formed_id(quarantine_url):
    async def go():
        async with open_store(quarantine_url) as store:
            with pytest.raises(NotFound, match="no held message"):
                await store.get("q-" + "0" * 26)
            with pytest.raises(NotFound, match="no held message"):
                await store.claim("q-" + "0" * 26, "r")

    run(go())


def test_reopening_does_not_migrate_again(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        for _ in range(3):
            async with open_store(quarantine_url) as store:
                await store.hold(decision, decision.message.raw)
        async with open_store(quarantine_url) as store:
            return len(await store.list())

    assert run(go()) == 3


def test_unreachable_store_raises_store_unavailable(tmp_path, make_decision):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    decision = make_decision()

    async def go(url):
        async with open_store(url) as store:
            await store.hold(decision, decision.message.raw)

    with pytest.raises(StoreUnavailable):
        run(go(f"sqlite:///{blocker}/q.sqlite3"))

    async def ping(url):
        async with open_store(url) as store:
            await store.ping()

    with pytest.raises(StoreUnavailable):
        run(ping(f"sqlite:///{blocker}/q.sqlite3"))


def test_ping_creates_the_schema_and_a_write_probe_leaves_nothing(quarantine_url):
    async def go():
        async with open_store(quarantine_url) as store:
            await store.ping()
            await store.ping(write=True)
            return await store.list(), await store.check()

    assert run(go()) == ([], [])


@pytest.mark.postgres
def test_unreachable_postgres_raises_store_unavailable(make_decision):
    from relay.quarantine.postgres import PostgresStore
    from tests.fixtures.common import free_port

    decision = make_decision()

    async def go():
        store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none", timeout=2.0)
        try:
            await asyncio.wait_for(store.hold(decision, decision.message.raw), 60)
        finally:
            await store.close()

    with pytest.raises(StoreUnavailable):
        run(go())


def test_concurrent_holds_all_fail_cleanly_when_the_store_cannot_write(tmp_path, make_decision):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    decision = make_decision()

    async def go():
        async with open_store(f"sqlite:///{blocker}/q.sqlite3") as store:
            holds = [store.hold(decision, decision.message.raw) for _ in range(10)]
            return await asyncio.wait_for(asyncio.gather(*holds, return_exceptions=True), 30)

    results = run(go())
    assert len(results) == 10 and all(isinstance(r, StoreUnavailable) for r in results)


def test_concurrent_holds_are_all_stored(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            ids = await asyncio.gather(*(store.hold(decision, decision.message.raw) for _ in range(40)))
            return ids, await store.list(), await store.check()

    ids, rows, problems = run(go())
    assert len(set(ids)) == 40 and {r.id for r in rows} == set(ids) and problems == []


def test_count_by_status(quarantine_url, make_decision):
    decision = make_decision()

    async def go():
        async with open_store(quarantine_url) as store:
            empty = await store.count("held")
            ids = [await store.hold(decision, decision.message.raw) for _ in range(3)]
            await store.delete(ids[0], "rev")
            return empty, await store.count("held"), await store.count("deleted"), await store.count("released")

    assert run(go()) == (0, 2, 1, 0)
