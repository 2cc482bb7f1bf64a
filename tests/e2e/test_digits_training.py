"""The issues' acceptance runs: the real CLI on the real digits data, every registered method, on the CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rskd_core.methods import METHODS
from tests.core.test_cli import run
from tests.core.test_data import make_image_folder

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_reaches_93_percent_on_digits_in_under_two_minutes(method: str, tmp_path: Path) -> None:
    extra = [] if method == "rskd" else ["--method", method]  # the example file is RSKD-L itself
    start = time.monotonic()
    proc = run("train", "examples/runs/digits_rskd.yaml", *extra, "--out", str(tmp_path), "--quiet")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{method}: {elapsed:.1f}s, final top1 {summary['final/test_top1']:.4f}")
    assert json.loads((tmp_path / "config.json").read_text())["method"]["name"] == method
    assert summary["final/test_top1"] >= (0.95 if method in ("rskd", "ce") else 0.93)
    assert elapsed < 120


def test_cs_kd_on_an_image_folder(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "data" / "shapes")
    proc = run(
        "train", "examples/runs/digits_rskd.yaml", "--method", "cs_kd", "--set", "data.name=imagefolder",
        "--set", "data.root=shapes", "--set", "data.image_size=32", "--set", "data.num_workers=2",
        "--set", "optim.epochs=2", "--set", "optim.batch_size=8", "--out", str(tmp_path / "run"), "--quiet",
        env={"RSKD_DATA_ROOT": str(tmp_path / "data")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and "train/cls" in records[-1]
    run_info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_info["train_size"] == 18 and run_info["test_size"] == 6
