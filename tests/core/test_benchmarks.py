"""The benchmark scripts run and print the documented JSON (figures themselves are reported, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_step_overhead_prints_the_documented_keys() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/step_overhead.py", "--rounds", "1", "--steps", "1", "--train-size", "128",
         "--loader-images", "256", "--loader-rounds", "1", "--workers", "0", "--image-size", "16", "--classes", "10"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu"
    assert set(out["ratio_to_ce"]) == {
        "rskd_l/ema", "rskd_l/prev_epoch", "rskd_l/last_batch", "rskd_l/pred_bank", "rskd_ml/ema",
        "label_smoothing", "tf_kd_reg", "tf_kd_self", "cs_kd", "ps_kd", "byot", "dlb",
    }  # fmt: skip
    assert all(v > 0 for v in out["ratio_to_ce"].values())
    assert out["loader"]["device_resident_ips"] > 0 and out["loader"]["dataloader_ips"] > 0


def test_worker_overhead_runs_a_one_trial_sweep_beside_the_direct_call() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/worker_overhead.py", "--epochs", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert out["epochs"] == 2 and out["ratio"] > 0 and out["fixed_startup_s"] > 0
    assert out["final_top1_direct"] == out["final_top1_sweep"]  # the same config trains the same way in a trial
