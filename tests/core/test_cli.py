"""``rskd`` as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rskd_core.data import DATASETS
from rskd_core.methods import METHODS
from rskd_core.models import MODELS
from rskd_core.registry import Registry
from rskd_core.teachers import TEACHERS

ROOT = Path(__file__).resolve().parents[2]
RSKD = str(Path(sys.executable).parent / "rskd")
TINY = [
    "--set", "data.name=synthetic", "--set", "data.image_size=8", "--set", "data.train_size=64",
    "--set", "data.test_size=32", "--set", "data.num_classes=4", "--set", "model.width=4",
    "--set", "optim.batch_size=16", "--set", "optim.epochs=2", "--set", "runtime.threads=1",
]  # fmt: skip


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RSKD, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize(
    ("what", "registry", "some"),
    [
        ("methods", METHODS, ["ce", "rskd", "ps_kd", "cs_kd"]),
        ("teachers", TEACHERS, ["ema", "pred_bank", "last_batch"]),
        ("models", MODELS, ["preact_resnet18", "resnet32", "wrn_28_10"]),
        ("datasets", DATASETS, ["digits", "cifar100", "imagefolder"]),
    ],
)
def test_list(what: str, registry: Registry[object], some: list[str]) -> None:
    proc = run("list", what)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == registry.names()
    assert set(some) <= set(proc.stdout.split())


def test_train_writes_the_documented_outputs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run("train", "examples/runs/digits_rskd.yaml", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "epoch   2/2" in proc.stderr or "epoch  2/2" in proc.stderr  # a line of metrics per epoch
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2
    for name in ["config.json", "run.json", "metrics.jsonl", "checkpoint.pt", "best.pt"]:
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ["train/loss", "test/top1", "test/top5", "test/nll", "test/ece", "lr", "throughput/samples_per_s",
                "train/ce", "train/res_out"]:  # fmt: skip
        assert key in records[0], key
    assert all(0 <= r["test/top1"] <= 1 for r in records)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"]["name"] == "rskd" and cfg["data"]["name"] == "synthetic"
    # continue the same run for two more epochs: only runtime/optim.epochs... must match, so resume as is
    proc = run("train", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["epochs"] == 2  # already finished: nothing re-run


def test_method_flag_swaps_method_and_teacher(tmp_path: Path) -> None:
    proc = run("train", "examples/runs/digits_rskd.yaml", *TINY, "--method", "ce", "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["method"] == {"name": "ce"} and cfg["teacher"]["rule"] == "none"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "optim.lr=-1"], "optim.lr: Input should be greater than 0"),
        (["--set", "teacher.rule=none"], "rskd needs a pseudo-teacher: set teacher.rule"),
        (["--method", "nope"], "unknown method 'nope'; known methods"),
        (["--set", "data.name=imagenet"], "data.name"),
    ],
)
def test_bad_configs_exit_2_with_a_message(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run("train", "examples/runs/digits_rskd.yaml", *args, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "x").exists()  # nothing written for a refused config


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    proc = run(
        "train", "examples/runs/digits_rskd.yaml", "--set", "data.name=cifar100", "--out", str(tmp_path / "x"),
        env={"RSKD_DATA_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"{tmp_path}/cifar-100-python" in proc.stderr
