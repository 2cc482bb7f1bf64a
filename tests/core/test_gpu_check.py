"""benchmarks/gpu_check.py, the prepared device check of issue 13, in its CPU smoke mode: every section runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ["pytest_gpu", "steps", "compile", "packing", "epoch"]


def test_gpu_check_smoke_runs_every_section_and_writes_its_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--cpu-smoke"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "OUT": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == out
    assert out["mode"] == "cpu-smoke" and "not installed" in out["ray"]
    for name in SECTIONS:
        assert "error" not in out[name], (name, out[name].get("traceback"))
    gpu = out["pytest_gpu"]
    assert gpu["exit_code"] == 0 and gpu["failed"] == gpu["errors"] == 0 and gpu["skipped"] >= 5
    assert all("needs CUDA" in t["message"] for t in gpu["tests"])
    steps = out["steps"]
    assert set(steps["images_per_s"]) == {"ce", "rskd_l/ema", "rskd_l/pred_bank", "rskd_ml/ema", "ps_kd", "cs_kd",
                                          "dlb"}  # fmt: skip
    assert set(steps["step_time_ratio_to_ce"]) == set(steps["images_per_s"]) - {"ce"}
    assert all(v > 0 for v in steps["images_per_s"].values())
    assert "skipped" in out["compile"]  # CPU: compile is measured on the GPU only
    packing = out["packing"]["processes"]
    assert set(packing) == {"1", "2"} and all(p["images_per_s"] > 0 for p in packing.values())
    assert out["epoch"]["second_epoch_s"] > 0 and out["epoch"]["train_images"] == 256
