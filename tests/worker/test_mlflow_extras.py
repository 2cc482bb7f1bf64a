"""A trial's MLflow 3 records on a real (SQLite) MLflow: dataset inputs with digests, the final weights as a
LoggedModel linked to the run, its final metrics and the test set, loadable back into a TapModel; system metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from dashboards.layout import Tag
from rskd_core.config import DataConfig, RunConfig
from rskd_core.engine import Trainer
from rskd_core.weights import load_tap_model
from worker.mlflow_extras import (
    SystemMetricsLogger,
    dataset_digest,
    download_model_weights,
    log_final_model,
    log_trial_datasets,
)
from worker.tracking import MlflowEpochLogger, TrialRun

DIGITS = {
    "data": {"name": "digits"},
    "model": {"name": "preact_resnet_tiny", "width": 4},
    "optim": {"epochs": 2, "schedule": "cosine", "milestones": [], "batch_size": 128},
    "runtime": {"device": "cpu", "threads": 1},
}


def test_digests_name_the_data_not_the_trial(tmp_path: Path) -> None:
    base = DataConfig(name="digits")
    train, test = dataset_digest(base, None, "train"), dataset_digest(base, None, "test")
    assert train[1] != test[1] and train[0].startswith("file:")
    assert dataset_digest(DataConfig(name="digits"), None, "train") == train  # another trial, same data
    for changed in ({"label_noise": 0.2}, {"train_per_class": 50}, {"image_size": 16}, {"subset_seed": 0}):
        other = DataConfig(name="digits", **changed)
        same = changed == {"subset_seed": 0}  # the default: nothing changed
        assert (dataset_digest(other, None, "train")[1] == train[1]) is same, changed
    # the test set stays clean under label noise and subsets, but not under a resize
    assert dataset_digest(DataConfig(name="digits", label_noise=0.2), None, "test") == test
    assert dataset_digest(DataConfig(name="digits", image_size=16), None, "test") != test
    syn = DataConfig(name="synthetic")
    assert dataset_digest(syn, None, "train") != dataset_digest(
        DataConfig(name="synthetic", train_size=64), None, "train"
    )
    folder = tmp_path / "imagefolder"
    for split in ("train", "val"):
        (folder / split / "cat").mkdir(parents=True)
        (folder / split / "cat" / "a.png").write_bytes(b"x" * 10)
    img = DataConfig(name="imagefolder")
    before = dataset_digest(img, tmp_path, "train")
    (folder / "train" / "cat" / "b.png").write_bytes(b"y")
    assert dataset_digest(img, tmp_path, "train") != before
    assert dataset_digest(img, tmp_path, "test")[1] == dataset_digest(img, tmp_path, "test")[1]


def test_a_trial_logs_datasets_a_linked_model_and_system_metrics(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("extras", artifact_location=(tmp_path / "artifacts").as_uri())
    rid = client.create_run(exp).info.run_id
    client.update_run(rid, status="SCHEDULED")
    run = TrialRun(client, rid, patience_s=5)
    logger = MlflowEpochLogger(client, rid)
    cfg = RunConfig.model_validate(DIGITS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trainer = Trainer(cfg, [logger, SystemMetricsLogger(rid, uri, interval_s=0.2)])
    refs = log_trial_datasets(client, rid, trainer, None)
    result = trainer.fit()
    trainer.save_weights(tmp_path / "final.pt")
    (tmp_path / "config.json").write_text(cfg.model_dump_json())
    model_id = log_final_model(client, exp, rid, "ce-seed0", tmp_path / "final.pt", tmp_path / "config.json", 2)
    link = {"model_id": model_id, "dataset_name": refs[1].name, "dataset_digest": refs[1].digest}
    run.finish(result, [tmp_path / "final.pt"], tmp_path / "config.json", link=link)

    got = client.get_run(rid)
    inputs = got.inputs.dataset_inputs
    assert {(d.dataset.name, d.dataset.digest) for d in inputs} == {(r.name, r.digest) for r in refs}
    assert {t.value for d in inputs for t in d.tags} == {"training", "testing"}
    assert any(k.startswith("system/cpu") for k in got.data.metrics), sorted(got.data.metrics)
    assert got.data.tags[Tag.DEVICE] == "cpu" and got.data.tags[Tag.DEVICE_NAME] == (
        trainer.run_info()["device_name"] or "unknown"
    )
    assert [o.model_id for o in got.outputs.model_outputs] == [model_id]
    model = client.get_logged_model(model_id)
    assert model.source_run_id == rid and str(model.status).endswith("READY")
    top1 = {m.key: m for m in model.metrics}["final/test_top1"]
    assert top1.value == pytest.approx(got.data.metrics["final/test_top1"])
    assert (top1.dataset_name, top1.dataset_digest) == (refs[1].name, refs[1].digest)
    # the documented way back: download the LoggedModel's final.pt, then the project's loader
    loaded = load_tap_model(download_model_weights(client, model_id, tmp_path / "dl"))
    x = torch.randn(3, 1, 8, 8)
    trainer.model.eval()
    assert torch.allclose(loaded(x), trainer.model(x), atol=1e-6)


def test_the_live_note_follows_a_running_sweep(tmp_path: Path) -> None:
    from dashboards.layout import TrialIdentity, sweep_tags
    from worker.mlflow_extras import LiveNote

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("live", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(exp, tags=sweep_tags("sw-live", "test")).info.run_id
    for seed, (variant, role) in enumerate([("rskd_l", "variant"), ("ce", "baseline")] * 2):
        ident = TrialIdentity(f"t{seed}", variant, role, variant, seed // 2, "h", "ema")
        rid = client.create_run(exp, tags=ident.tags("sw-live", parent, "test")).info.run_id
        client.log_metric(rid, "final/test_top1", 0.9 if role == "variant" else 0.8)
        client.set_terminated(rid, "FINISHED")
    live = LiveNote(client, "sw-live", parent, "live", {"metric": "test/top1", "mode": "max"}, every_s=0.1)
    with live:
        deadline = time.monotonic() + 20
        while Tag.NOTE not in client.get_run(parent).data.tags and time.monotonic() < deadline:
            time.sleep(0.2)
    note = client.get_run(parent).data.tags[Tag.NOTE]
    assert "(running — refreshed every 30 s)" in note and "Δ Top-1 vs ce" in note and "rskd\\_l" in note
