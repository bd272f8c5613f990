"""Runs readiness checks concurrently, each under its own timeout, and sums them up."""
from __future__ import annotations

import asyncio
import time
from typing import Iterable

from aiohttp import web

from gateway.plugin import ReadinessCheck

CHECKS = web.AppKey("readiness_checks", tuple)


async def run_check(check: ReadinessCheck) -> dict:
    started = time.perf_counter()
    result: dict = {"critical": check.critical}
    try:
        details = await asyncio.wait_for(check.probe(), check.timeout)
        result["status"] = "ok"
        if details:
            result.update(details)
    except asyncio.TimeoutError:
        result.update(status="fail", error=f"timed out after {check.timeout:g}s")
    except Exception as exc:  # a probe failing is a finding, not an error of ours
        result.update(status="fail", error=f"{type(exc).__name__}: {exc}"[:300])
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


async def run_checks(checks: Iterable[ReadinessCheck]) -> tuple[str, dict[str, dict]]:
    """('ok' | 'degraded' | 'fail', {name: result})."""
    checks = list(checks)
    results = dict(zip((c.name for c in checks), await asyncio.gather(*(run_check(c) for c in checks))))
    failed = [r for r in results.values() if r["status"] != "ok"]
    if any(r["critical"] for r in failed):
        return "fail", results
    return ("degraded" if failed else "ok"), results
