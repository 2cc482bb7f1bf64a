"""GPU checks of issue 13, run by ``benchmarks/gpu_check.py`` (``pytest -m gpu tests/gpu``); all skip without CUDA.

Tolerance of the fast-settings test: bf16 autocast, channels_last and torch.compile change rounding, not the math,
so after the same short run the test top-1 must be within 5 points of fp32 eager's (both well above chance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from rskd_core.config import RunConfig
from rskd_core.engine import Checkpointer, NonFiniteLossError, Trainer
from rskd_core.engine.runtime import GPUOutOfMemoryError, cap_memory, explain_oom
from rskd_core.methods import Progress
from tests.core.test_host_sync import METHODS
from tests.core.test_trainer import StopAfter

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: run benchmarks/gpu_check.py on a GPU"),
]
CUDA = ("runtime.device=cuda",)
EAGER = (*CUDA, "runtime.compile=false")
ACCURACY_TOLERANCE = 0.05


@pytest.fixture(autouse=True)
def _whole_gpu() -> Iterator[None]:
    """A memory cap is per process: give the next test the whole GPU back."""
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_fast_settings_reach_the_accuracy_of_fp32_eager(make_config: Callable[..., RunConfig]) -> None:
    recipe = ("model.width=16", "data.image_size=16", "data.num_classes=10", "data.train_size=2048",
              "data.test_size=512", "optim.batch_size=128", "optim.epochs=6", "optim.lr=0.1")  # fmt: skip
    fp32 = Trainer(make_config(*recipe, *CUDA, "runtime.amp=false", "runtime.channels_last=false",
                               "runtime.compile=false", "runtime.sgd_impl=for_loop"))  # fmt: skip
    fast = Trainer(make_config(*recipe, *CUDA))  # unset knobs: bf16, channels_last, compile, foreach SGD
    assert (fast.rt.amp, fast.rt.channels_last, fast.rt.compile, fast.rt.sgd_impl) == (True, True, True, "foreach")
    final = fast.fit().final
    a, b = fp32.fit().final["test/top1"], final["test/top1"]
    assert a > 0.5 and abs(a - b) <= ACCURACY_TOLERANCE, (a, b)
    assert final["system/peak_memory_mb"] > 0 and final["system/gpu_memory_fraction"] == 1.0  # MLflow's system facts
    assert fast.run_info()["device_name"] == torch.cuda.get_device_name(0)


def test_resume_on_the_gpu_continues_exactly(tmp_path: Path, make_config: Callable[..., RunConfig]) -> None:
    cfg = make_config(*EAGER, "runtime.amp=false", "runtime.deterministic=true", "optim.epochs=3",
                      "method.name=rskd", "teacher.rule=ema", "method.warmup_epochs=1")  # fmt: skip
    straight = Trainer(cfg)
    straight.fit()
    assert Trainer(cfg, [Checkpointer(tmp_path), StopAfter(2)]).fit().epochs_done == 2
    resumed = Trainer(cfg)
    assert resumed.fit(resume_from=tmp_path / "checkpoint.pt").epochs_done == 3
    # deterministic algorithms make it exact; the tolerance absorbs a cuBLAS set up before CUBLAS_WORKSPACE_CONFIG
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3, msg=f"model.{name} differs after resume")
    top1 = [r["test/top1"] for r in resumed.history]
    assert top1 == pytest.approx([r["test/top1"] for r in straight.history], abs=0.02)


def test_the_nan_guard_names_the_step_without_a_sync_per_step(
    make_config: Callable[..., RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(make_config(*EAGER, "optim.epochs=2"))
    assert trainer.rt.nan_check_every > 1  # the CUDA default
    calls = iter(range(1000))
    losses = trainer.method.losses

    def poisoned(*args: Any) -> dict[str, torch.Tensor]:
        terms = losses(*args)
        return {**terms, "ce": terms["ce"] * float("nan")} if next(calls) == 3 else terms

    monkeypatch.setattr(trainer.method, "losses", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1: ce=nan \(seen 2 steps later"):
        trainer.fit()
    assert trainer.epoch == 1


def test_a_capped_trial_that_outgrows_its_share_says_so(make_config: Callable[..., RunConfig]) -> None:
    dev = torch.device("cuda")
    total = torch.cuda.get_device_properties(dev).total_memory
    share = r"runtime.gpu_memory_fraction=0.01 .*resources.gpu"
    with pytest.raises(GPUOutOfMemoryError, match=share), explain_oom(dev, 0.01, 128):
        cap_memory(dev, 0.01)
        torch.empty(int(0.02 * total), dtype=torch.uint8, device=dev)
    torch.cuda.set_per_process_memory_fraction(1.0)
    # a whole trainer: PreAct ResNet-18 at batch 512 needs far more than 0.2 % of the GPU for its activations
    cfg = make_config(*EAGER, "runtime.gpu_memory_fraction=0.002", "model.name=preact_resnet18",
                      "data.image_size=32", "data.train_size=1024", "optim.batch_size=512")  # fmt: skip
    with pytest.raises(GPUOutOfMemoryError, match=r"gpu_memory_fraction=0.002 .*optim.batch_size=512"):
        Trainer(cfg).fit()


@pytest.mark.parametrize("overrides", list(METHODS.values()), ids=list(METHODS))
def test_the_step_never_waits_for_the_gpu(overrides: list[str], make_config: Callable[..., RunConfig]) -> None:
    warm = "method.warmup_epochs=0" if "method.name=rskd" in overrides else "optim.warmup_epochs=0"
    trainer = Trainer(make_config(*overrides, *EAGER, "runtime.nan_check_every=1000", warm))
    trainer._run_epoch()  # banks filled, caches primed, cuDNN's algorithms chosen
    trainer.model.train()
    trainer.method.train()
    trainer.teacher.on_epoch_start(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step, batch in enumerate(trainer.data.train.epoch(1)):
            trainer.train_step(batch, Progress(1, step, trainer.steps_per_epoch, 3))
    finally:
        torch.cuda.set_sync_debug_mode(0)
