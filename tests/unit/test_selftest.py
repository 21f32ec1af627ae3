"""relay/selftest.py without services: results, bounds, and the checks that need no network."""

from __future__ import annotations

import asyncio

from relay import selftest
from relay.selftest import FAIL, PASS, SKIP, CheckResult


def test_a_hung_check_is_a_fail_not_a_hang():
    async def hang() -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    result = asyncio.run(selftest._bounded("clamd tcp://x:1", 0.05, hang))
    assert (result.status, result.detail) == (FAIL, "no answer within 0.05s")


def test_an_exception_is_that_parts_fail_with_its_message():
    async def broken() -> CheckResult:
        raise RuntimeError("quarantine database /x: disk I/O error")

    result = asyncio.run(selftest._bounded("quarantine", 1, broken))
    assert result.failed and result.detail == "quarantine database /x: disk I/O error"
    assert result.as_dict() == {"name": "quarantine", "status": FAIL, "detail": result.detail}


def test_unconfigured_tls_and_dkim_are_skipped(make_settings):
    settings = make_settings()
    assert selftest.check_tls(settings).status == SKIP
    assert [r.status for r in selftest.check_dkim(settings)] == [SKIP]


def test_policy_pass_and_fail(make_settings, tmp_path):
    assert selftest.check_policy(make_settings()).status == PASS
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\nrules: [\n", encoding="utf-8")
    result = selftest.check_policy(make_settings(policy=str(bad)))
    assert result.failed and str(bad) in result.detail


def test_missing_tls_files_fail(make_settings, tmp_path):
    settings = make_settings(tls_cert=str(tmp_path / "none.crt"), tls_key=str(tmp_path / "none.key"))
    result = selftest.check_tls(settings)
    assert result.failed and "none.crt" in result.detail


def test_store_probe_leaves_nothing(make_settings, tmp_path):
    settings = make_settings(quarantine=f"sqlite:///{tmp_path}/q.sqlite3")
    first = asyncio.run(selftest.check_quarantine(settings))
    second = asyncio.run(selftest.check_quarantine(settings))
    assert first.status == second.status == PASS
    assert second.info == {"schema_version": first.info["schema_version"], "held": 0}
