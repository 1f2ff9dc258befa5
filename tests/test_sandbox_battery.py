"""The hostile-code battery (../shared/sandbox_battery, 37 cases) against the real sandbox.

Every case must be contained: no ``ESCAPED:`` line, the expected outcome within its time, and
every host-side check of the battery's README (files, listeners, canary, stray processes,
output cap, core files, forged results). The cases run once per session, a few at a time; each
case is its own test so a report names the one that escaped.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.conftest import IN_CI, require_sandbox
from tests.sandbox_battery import BatteryHost, Verdict, load_cases, run_battery
from toolrun.config import SandboxSettings
from toolrun.sandbox.launcher import Sandbox
from toolrun.sandbox.probe import probe_with

CASES = load_cases()
CASE_IDS = [case["id"] for case in CASES.CASES]


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    require_sandbox()
    if os.geteuid() != 0:
        message = "the battery's process checks need the service to run as root (a uid per run)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    report = probe_with(SandboxSettings())
    assert report.host is not None
    with BatteryHost(CASES) as host:
        results = asyncio.run(run_battery(Sandbox(report.host), host))
    return {v.case_id: v for v in results}


def test_the_battery_has_37_cases() -> None:
    assert len(CASE_IDS) == 37


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_case_is_contained(verdicts: dict[str, Verdict], case_id: str) -> None:
    verdict = verdicts[case_id]
    assert verdict.contained, (
        f"{case_id}: {verdict.status} ({verdict.reason}) after {verdict.wall_s:.1f} s: "
        + "; ".join(verdict.failures)
    )
