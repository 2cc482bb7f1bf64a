"""The issue's acceptance runs: the real CLI on the real digits data, RSKD and CE, on the CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.core.test_cli import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("extra", [[], ["--method", "ce"]], ids=["rskd", "ce"])
def test_digits_reaches_95_percent_in_under_two_minutes(extra: list[str], tmp_path: Path) -> None:
    start = time.monotonic()
    proc = run("train", "examples/runs/digits_rskd.yaml", *extra, "--out", str(tmp_path), "--quiet")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{extra or 'rskd'}: {elapsed:.1f}s, final top1 {summary['final/test_top1']:.4f}")
    assert summary["final/test_top1"] >= 0.95
    assert elapsed < 120
