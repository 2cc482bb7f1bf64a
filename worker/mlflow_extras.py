"""What MLflow 3 records of a trial besides its metrics: the data it saw, the model it made, the machine it ran on.

- **Datasets** (``log_trial_datasets``): the training and the test set as dataset inputs of the trial's run, each with
  a content digest that is cheap to take (digits: the data file; CIFAR: the pickle files; imagefolder: the sorted file
  list with sizes, no image read; synthetic: its generating config) combined with every setting that changes the
  tensors (image size; for the training set also the subset and the label noise). Two trials with equal digests saw
  the same data; the UI's Dataset column shows it.
- **Models** (``log_final_model``): the final weights (``final.pt``, the file ``Trainer.save_weights`` writes, and the
  trial's ``config.json``) as an MLflow LoggedModel of the run — the Models tab — with the run's final metrics linked
  to it and to the test set. ``rskd_core.weights.load_tap_model`` loads it back.
- **System metrics** (``SystemMetricsLogger``): MLflow's own monitor (CPU, memory, disk, network; GPU through
  nvidia-ml-py where a GPU and the package are present) while the trial trains, as ``system/*`` metrics of its run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dashboards.layout import Tag
from rskd_core.config import DataConfig
from rskd_core.data.datasets import _CIFAR, _digits_file, resolve_folder
from rskd_core.engine import Callback, Trainer

log = logging.getLogger(__name__)
DIGEST_CHARS = 16  # MLflow keeps dataset digests up to 36 characters
SYSTEM_METRICS_INTERVAL_S = 5.0  # a sample (a get_run and a log_batch) every 5 s, ~0.03 CPU-s each; the end flushes
MODEL_TYPE = "rskd-tap-model"
NOTE_EVERY_S = 30.0  # the parent's description while the sweep runs: at most this often


@dataclass(frozen=True)
class DatasetRef:
    """A data set as logged: name, digest (what metrics link to), source and size."""

    name: str
    digest: str
    source: str
    rows: int
    context: str  # training | testing


@cache
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's bytes hashed once per process (keyed on its size and mtime: a changed file is hashed again)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files_digest(paths: list[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{_file_digest(str(p), st.st_size, st.st_mtime_ns)};".encode())
    return h.hexdigest()


def _listing_digest(folder: Path) -> str:
    """The sorted relative paths and sizes of every file under ``folder`` (no file is read)."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder).as_posix()}:{path.stat().st_size};".encode())
    return h.hexdigest()


def _raw_content(cfg: DataConfig, root: Path | None, split: str) -> tuple[str, str]:
    """(source URI, digest of the raw content) of one split (``train`` or ``test``) of the configured data set."""
    if cfg.name == "digits":
        path = _digits_file()
        return path.as_uri(), _files_digest([path])
    if cfg.name in _CIFAR:
        folder_name, train_files, test_file, _, _ = _CIFAR[cfg.name]
        folder = resolve_folder(cfg, root, folder_name)
        names = train_files if split == "train" else [test_file]
        return folder.resolve().as_uri(), _files_digest([folder / n for n in names])
    if cfg.name == "imagefolder":
        folder = resolve_folder(cfg, root, "imagefolder") / ("train" if split == "train" else "val")
        return folder.resolve().as_uri(), _listing_digest(folder)
    # synthetic, or any generated data set: its generating settings are its content
    facts = cfg.model_dump(include={"name", "num_classes", "channels", "train_size", "test_size"})
    return f"rskd:{cfg.name}", hashlib.blake2b(json.dumps(facts, sort_keys=True).encode(), digest_size=16).hexdigest()


def dataset_digest(cfg: DataConfig, root: Path | None, split: str) -> tuple[str, str]:
    """(source, digest) of a split: its raw content plus every setting that changes its tensors — the image size, and
    for the training set the stratified subset and the label noise (with their seed)."""
    source, raw = _raw_content(cfg, root, split)
    fields = {"image_size"} | (
        {"train_per_class", "train_fraction", "label_noise", "subset_seed"} if split == "train" else set()
    )
    shaping = json.dumps(cfg.model_dump(include=fields), sort_keys=True)
    digest = hashlib.blake2b(f"{raw}|{split}|{shaping}".encode(), digest_size=16).hexdigest()
    return source, digest[:DIGEST_CHARS]


def trial_datasets(cfg: DataConfig, root: Path | None, train_rows: int, test_rows: int) -> list[DatasetRef]:
    out = []
    for split, context, rows in (("train", "training", train_rows), ("test", "testing", test_rows)):
        source, digest = dataset_digest(cfg, root, split)
        out.append(DatasetRef(f"{cfg.name}-{split}", digest, source, rows, context))
    return out


def log_trial_datasets(client: Any, run_id: str, trainer: Trainer, data_root: str | None) -> list[DatasetRef]:
    """The trainer's training and test sets as dataset inputs of the run (logging them again is harmless)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    info = trainer.data.info
    refs = trial_datasets(trainer.cfg.data, Path(data_root) if data_root else None, info.train_size, info.test_size)
    inputs = [
        DatasetInput(
            Dataset(
                name=ref.name,
                digest=ref.digest,
                source_type="local" if ref.source.startswith("file:") else "code",
                source=json.dumps({"uri": ref.source}),
                profile=json.dumps({"num_rows": ref.rows, "num_classes": info.num_classes}),
            ),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, ref.context)],
        )
        for ref in refs
    ]
    client.log_inputs(run_id, datasets=inputs)
    return refs


def log_final_model(
    client: Any, experiment_id: str, run_id: str, name: str, weights: Path, config: Path, step: int
) -> str:
    """``weights`` (final.pt) and ``config`` as a READY LoggedModel whose source is the run, and the run's output at
    ``step`` (its last epoch); returns the model id (metrics logged with it are linked to it)."""
    from mlflow.entities import LoggedModelOutput

    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, model_type=MODEL_TYPE)
    with tempfile.TemporaryDirectory() as tmp:
        for path in (weights, config):
            try:
                os.link(path, Path(tmp) / path.name)  # same file system: no copy of the weights
            except OSError:
                shutil.copy2(path, Path(tmp) / path.name)
        client.log_model_artifacts(model.model_id, tmp)
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
    return str(model.model_id)


def download_model_weights(client: Any, model_id: str, dst: str | Path | None = None) -> Path:
    """A trial's LoggedModel's ``final.pt`` on local disk; ``rskd_core.weights.load_tap_model`` makes it a model."""
    from mlflow.artifacts import download_artifacts

    location = client.get_logged_model(model_id).artifact_location.rstrip("/")
    return Path(download_artifacts(artifact_uri=f"{location}/final.pt", dst_path=None if dst is None else str(dst)))


class SystemMetricsLogger(Callback):
    """MLflow's system-metrics monitor on the trial's run while it trains: started once the run is RUNNING (the
    monitor stops by itself when it sees another state), stopped and flushed at the end. Continues the run's
    ``system/*`` steps after a retry."""

    def __init__(self, run_id: str, tracking_uri: str, interval_s: float = SYSTEM_METRICS_INTERVAL_S) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.interval_s = interval_s
        self.monitor: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        try:
            self.monitor = SystemMetricsMonitor(
                self.run_id, sampling_interval=self.interval_s, resume_logging=True, tracking_uri=self.tracking_uri
            )
            self.monitor.start()
        except Exception as err:  # never fail a trial over its system metrics
            log.warning("no system metrics for run %s: %s", self.run_id, err)
            self.monitor = None

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if self.monitor is None:
            return
        monitor, self.monitor = self.monitor, None
        monitor.finish()
        try:  # the samples taken since the monitor last logged (a trial shorter than an interval: its only ones)
            if any(m._metrics for m in monitor.monitors):
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()
        except Exception as err:
            log.warning("the last system metrics of run %s were not logged: %s", self.run_id, err)


class LiveNote:
    """While a sweep runs, its parent run's description is rewritten every ``every_s`` (30 s) when the comparison
    changed (``dashboards.note``); the final one is written by ``dashboards.publish`` when the sweep ends. A failure
    to read or write is logged and tried again next time: it never stops a sweep."""

    def __init__(
        self,
        client: Any,
        sweep_id: str,
        parent_run_id: str,
        name: str,
        objective: dict[str, str],
        dashboard_url: str | None = None,
        every_s: float = NOTE_EVERY_S,
    ) -> None:
        self.args = (client, sweep_id, parent_run_id, name, objective, dashboard_url)
        self.every_s = every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="rskd-live-note", daemon=True)
        self.last = ""

    def __enter__(self) -> LiveNote:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    def refresh(self) -> None:
        from dashboards.collect import collect
        from dashboards.note import parent_note
        from dashboards.report import build_report

        client, sweep_id, parent_run_id, name, objective, dashboard_url = self.args
        report = build_report(collect(client, sweep_id, name), objective)
        experiment_id = client.get_run(parent_run_id).info.experiment_id
        text = parent_note(
            report, name=name, experiment_id=experiment_id, run_id=parent_run_id, dashboard_url=dashboard_url,
            running=True,
        )  # fmt: skip
        if text != self.last:
            client.set_tag(parent_run_id, Tag.NOTE, text)
            self.last = text

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self.refresh()
            except Exception as err:
                log.warning("could not refresh the sweep's MLflow description: %s", err)
