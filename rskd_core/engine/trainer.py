"""The one training loop. Variation comes through the Method, the TeacherRule and callbacks, never a copied loop.

One step: the teacher rule shapes the batch (``prepare``) and gives its signal (no grad); the student runs with the
taps the method asked for; the method returns named, weighted loss terms; their sum is checked for NaN/inf, backward,
SGD step; the teacher rule updates itself. Each epoch ends with an evaluation on the test set, a metrics record and
the callbacks (checkpoints, JSONL, progress, Ray/MLflow in ``worker/``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import rskd_core.engine.checkpoint as ckpt
from rskd_core.config import RunConfig
from rskd_core.data import Batch, DataBundle, build_data
from rskd_core.engine.callbacks import Callback, ProgressBar
from rskd_core.engine.diagnostics import Diagnostics, teacher_agreement
from rskd_core.engine.metrics import classification_metrics
from rskd_core.engine.nan_guard import NanGuard
from rskd_core.engine.runtime import (
    cap_memory,
    explain_oom,
    resolve_runtime,
    sgd_options,
    system_info,
    system_metrics,
)
from rskd_core.engine.schedule import LRSchedule
from rskd_core.methods import Method, ModelOutput, Progress, create_method
from rskd_core.models import TapModel, create_model
from rskd_core.teachers import TeacherContext, TeacherRule, create_teacher

CHECKPOINT_FORMAT = 1
log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """A checkpoint that does not belong to this config."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device={name} but CUDA is not available here; use runtime.device=cpu or auto")
    return device


def _comparable(cfg: RunConfig) -> dict[str, Any]:
    """The parts of a config that must match for a checkpoint to be resumed (runtime settings may change)."""
    data = cfg.model_dump(mode="json")
    data.pop("runtime")
    return data


@dataclass
class FitResult:
    epochs_done: int
    history: list[dict[str, Any]]
    best_top1: float
    best_epoch: int
    final: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Builds model, method, teacher rule, data and optimizer from a RunConfig and trains them."""

    def __init__(
        self,
        cfg: RunConfig,
        callbacks: Sequence[Callback] = (),
        *,
        data_root: str | Path | None = None,
        data: DataBundle | None = None,
    ) -> None:
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.device = resolve_device(cfg.runtime.device)
        self.rt = resolve_runtime(cfg.runtime, self.device)
        cap_memory(self.device, self.rt.gpu_memory_fraction)  # before the data set and the model land there
        torch.manual_seed(cfg.seed)
        self.teacher: TeacherRule = create_teacher(cfg.teacher)
        self.data_root = Path(data_root) if data_root is not None else None
        self.data = data or build_data(
            cfg.data,
            device=self.device,
            needs=self.teacher.loader_needs(cfg.optim.batch_size),
            eval_batch_size=cfg.eval.batch_size,
            seed=cfg.seed,
            data_root=self.data_root,
        )
        self.num_classes = self.data.info.num_classes
        self._build_networks()
        self.diagnostics = Diagnostics(cfg.runtime.diagnostics_every)
        extra = {f.name for f in self.model.feature_info} if self.diagnostics.every else set()
        self.student_taps = tuple(sorted(set(self.method.student_taps) | set(self.teacher.student_taps()) | extra))
        self.model.check_taps(self.student_taps)
        self.params = [p for p in [*self.model.parameters(), *self.method.parameters()] if p.requires_grad]
        self.optimizer = self._build_optimizer()
        self.steps_per_epoch = len(self.data.train)
        self.schedule = LRSchedule(cfg.optim, self.steps_per_epoch)
        # static shapes: an epoch has at most two batch sizes, each compiled once (dynamic kernels are slower)
        self.forward = (
            torch.compile(self.model.forward_taps, dynamic=False) if self.rt.compile else self.model.forward_taps
        )
        if self.rt.compile:
            self.teacher.compile()
        self.nan_guard = NanGuard(self.rt.nan_check_every)
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best_top1 = -1.0
        self.best_epoch = 0
        self._stop = False

    def _build_networks(self) -> None:
        """The student, the method's heads and the teacher rule, on the device in the runtime's memory format."""
        info = self.data.info
        self.model: TapModel = create_model(self.cfg.model, info.num_classes, info.channels).to(self.device)
        self.method: Method = create_method(self.cfg.method, self.model).to(self.device)
        if self.rt.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.method.to(memory_format=torch.channels_last)
        self.teacher.setup(
            self.model,
            TeacherContext(
                num_train=info.train_size,
                num_classes=info.num_classes,
                device=self.device,
                train_labels=info.train_labels.to(self.device),
                taps=self.method.teacher_taps,
            ),
        )

    def _build_optimizer(self) -> torch.optim.SGD:
        o = self.cfg.optim
        return torch.optim.SGD(
            self.params,
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov and o.momentum > 0,
            weight_decay=o.weight_decay,
            **sgd_options(self.rt.sgd_impl),
        )

    # ------------------------------------------------------------------ public API

    def request_stop(self) -> None:
        """Finish after the current epoch's callbacks (used by schedulers, signals and tests)."""
        self._stop = True

    def fit(self, resume_from: str | Path | None = None) -> FitResult:
        with explain_oom(self.device, self.rt.gpu_memory_fraction, self.cfg.optim.batch_size):
            return self._fit(resume_from)

    def _fit(self, resume_from: str | Path | None) -> FitResult:
        with self._runtime_settings():
            if resume_from is not None:
                self.load_checkpoint(resume_from)
            if self.teacher.needs_pretraining:
                self._pretrain_teacher()
            error: BaseException | None = None
            try:
                for cb in self.callbacks:
                    cb.on_fit_start(self)
                while self.epoch < self.cfg.optim.epochs and not self._stop:
                    self._run_epoch()
            except BaseException as err:
                error = err
                raise
            finally:
                for cb in self.callbacks:
                    cb.on_fit_end(self, error)
        return FitResult(
            epochs_done=self.epoch,
            history=list(self.history),
            best_top1=self.best_top1,
            best_epoch=self.best_epoch,
            final=dict(self.history[-1]) if self.history else {},
        )

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        self.method.eval()
        logits_all, labels_all = [], []
        with torch.no_grad(), self._autocast():
            for batch in self.data.test.epoch(0):
                x = self._prepare_input(batch.x)
                logits, taps = self.model.forward_taps(x, self.method.eval_taps)
                logits_all.append(self.method.predict(ModelOutput(logits, taps)).float())
                labels_all.append(batch.y)
        logits, labels = torch.cat(logits_all), torch.cat(labels_all)
        metrics = classification_metrics(logits, labels, self.cfg.eval.ece_bins)
        result = {f"test/{k}": v for k, v in metrics.items()}
        if self.diagnostics.every:
            result.update(self._teacher_diagnostics(logits, labels))
        return result

    def _teacher_diagnostics(self, student_logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        teacher_logits = []
        with torch.no_grad(), self._autocast():
            for batch in self.data.test.epoch(0):
                t = self.teacher.eval_logits(self._prepare_input(batch.x))
                if t is None:
                    return {}
                teacher_logits.append(t.float())
        return teacher_agreement(torch.cat(teacher_logits), student_logits, labels)

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.model_dump(mode="json"),
            "config_hash": self.cfg.config_hash(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": {"global_step": self.global_step, "steps_per_epoch": self.steps_per_epoch},
            "rng": ckpt.rng_state(),
            "history": self.history,
            "best": {"top1": self.best_top1, "epoch": self.best_epoch},
        }

    def save_checkpoint(self, path: str | Path) -> None:
        ckpt.save_atomic(self.checkpoint_state(), path)

    def save_weights(self, path: str | Path) -> None:
        """Inference weights (model + method heads) with the epoch and metrics they scored."""
        record = self.history[-1] if self.history else {}
        ckpt.save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "config": self.cfg.model_dump(mode="json"),
                "epoch": self.epoch,
                "metrics": record,
                "model": self.model.state_dict(),
                "method": self.method.state_dict(),
            },
            path,
        )

    def load_checkpoint(self, path: str | Path) -> None:
        state = ckpt.load(path, self.device)
        saved = RunConfig.model_validate(state["config"])
        if _comparable(saved) != _comparable(self.cfg):
            raise ResumeError(
                f"checkpoint {path} was written for another config (hash {state.get('config_hash')}, this run "
                f"{self.cfg.config_hash()}); resume with the same config, changing runtime.* only"
            )
        if state["schedule"]["steps_per_epoch"] != self.steps_per_epoch:
            raise ResumeError(f"checkpoint {path}: steps per epoch changed; the data set or batch size differs")
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state["history"])
        self.best_top1 = float(state["best"]["top1"])
        self.best_epoch = int(state["best"]["epoch"])
        ckpt.set_rng_state(state["rng"])

    def run_info(self) -> dict[str, Any]:
        """What reproduces the run: config hash, seed, versions, device."""
        return {
            "config_hash": self.cfg.config_hash(),
            "seed": self.cfg.seed,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device)
            if self.device.type == "cuda"
            else platform.processor(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            **system_info(self.device, self.rt.gpu_memory_fraction),
            **self.rt.as_info(),
            "train_size": self.data.info.train_size,
            "test_size": self.data.info.test_size,
            "steps_per_epoch": self.steps_per_epoch,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "method_parameters": sum(p.numel() for p in self.method.parameters()),
        }

    # ------------------------------------------------------------------ internals

    def _pretrain_teacher(self) -> None:
        """Stage 1 of a two-stage run: train a same-architecture teacher with CE on this recipe, then freeze it."""
        stage1 = RunConfig.model_validate(
            {
                **self.cfg.model_dump(mode="json"),
                "method": {"name": "ce"},
                "teacher": {"rule": "none"},
            }
        )
        log.info("stage 1: training the frozen teacher with CE for %d epochs", stage1.optim.epochs)
        shown = [cb for cb in self.callbacks if isinstance(cb, ProgressBar)]
        rng = ckpt.rng_state()
        teacher = Trainer(stage1, shown, data=self.data)  # a frozen teacher needs plain batches: same loaders
        result = teacher.fit()
        ckpt.set_rng_state(rng)  # stage 1 leaves the student's random streams as they were
        log.info(
            "stage 1 done: teacher test top-1 %.4f; stage 2: %s",
            result.final.get("test/top1", float("nan")),
            self.cfg.method.name,
        )
        self.teacher.set_pretrained(teacher.model.state_dict())

    @contextlib.contextmanager
    def _runtime_settings(self) -> Iterator[None]:
        rt = self.cfg.runtime
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        benchmark = torch.backends.cudnn.benchmark
        if rt.threads:
            torch.set_num_threads(rt.threads)
        if rt.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = self.rt.cudnn_benchmark
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
            torch.backends.cudnn.benchmark = benchmark

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.rt.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.rt.channels_last else x

    def train_step(self, batch: Batch, progress: Progress) -> tuple[dict[str, torch.Tensor], int]:
        """One optimizer step; returns the detached loss terms and the number of images trained on."""
        batch = self.teacher.prepare(batch)
        x = self._prepare_input(batch.x)
        lr = self.schedule.lr_at(self.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self._autocast():
            with torch.no_grad():
                signal = self.teacher.signal(Batch(x, batch.y, batch.idx))
            logits, taps = self.forward(x, self.student_taps)
            terms = self.method.losses(batch, ModelOutput(logits, taps), signal, progress)
            loss = torch.stack([t.float() for t in terms.values()]).sum()
            if self.diagnostics.due(self.global_step):
                self.diagnostics.measure_gradients(terms, taps)
                self.diagnostics.add_stats(self.method.step_stats(ModelOutput(logits, taps), signal))
        values = {"loss": loss.detach(), **{k: v.detach().float() for k, v in terms.items()}}
        self.nan_guard.observe(progress, values)
        if self.nan_guard.before_backward:
            self.nan_guard.check()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip is not None:
            total_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
            if self.diagnostics.due(self.global_step):
                self.diagnostics.add("diag/grad_total_norm", float(total_norm))
        self.optimizer.step()
        self.global_step += 1
        self.teacher.after_step(batch, logits.detach(), {k: v.detach() for k, v in taps.items()})
        if self.nan_guard.due():
            self.nan_guard.check()
        return values, len(batch)

    def _run_epoch(self) -> None:
        e, total = self.epoch, self.cfg.optim.epochs
        self.model.train()
        self.method.train()
        self.teacher.on_epoch_start(e)
        sums: dict[str, torch.Tensor] = {}
        images = 0
        start = time.perf_counter()
        for step, batch in enumerate(self.data.train.epoch(e)):
            progress = Progress(e, step, self.steps_per_epoch, total)
            values, n_images = self.train_step(batch, progress)
            images += n_images
            for k, v in values.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            done = Progress(e, step + 1, self.steps_per_epoch, total)
            for cb in self.callbacks:
                cb.on_step_end(self, done)
        self.nan_guard.check()  # before anything of this epoch is recorded or checkpointed
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        record: dict[str, Any] = {"epoch": e + 1}
        record.update({f"train/{k}": float(v) / max(self.steps_per_epoch, 1) for k, v in sums.items()})
        record.update(self.evaluate())
        record.update(self.diagnostics.pop_epoch())
        record["lr"] = self.schedule.lr_at(max(self.global_step - 1, 0))
        record["throughput/samples_per_s"] = images / max(elapsed, 1e-9)
        record["time/epoch_s"] = elapsed
        record.update(system_metrics(self.device, self.rt.gpu_memory_fraction))
        self.epoch = e + 1
        if record["test/top1"] > self.best_top1:
            self.best_top1, self.best_epoch = record["test/top1"], self.epoch
        self.history.append(record)
        for cb in self.callbacks:
            cb.on_epoch_end(self, record)


def fit(
    cfg: RunConfig,
    callbacks: Sequence[Callback] = (),
    *,
    resume_from: str | Path | None = None,
    data_root: str | Path | None = None,
) -> FitResult:
    """Train one run described by ``cfg``; ``resume_from`` continues from a ``checkpoint.pt``."""
    return Trainer(cfg, callbacks, data_root=data_root).fit(resume_from=resume_from)
