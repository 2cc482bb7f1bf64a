"""The device side of a run (issue 13): per-device defaults of the speed knobs, the OOM message, the memory facts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from rskd_core.config import RunConfig, RuntimeConfig
from rskd_core.engine import Trainer
from rskd_core.engine.runtime import GPUOutOfMemoryError, ResolvedRuntime, resolve_runtime, sgd_options

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def test_unset_knobs_are_fast_on_cuda_and_plain_elsewhere() -> None:
    assert resolve_runtime(RuntimeConfig(), CUDA) == ResolvedRuntime(
        amp=True, channels_last=True, compile=True, cudnn_benchmark=True, sgd_impl="foreach", nan_check_every=100,
        gpu_memory_fraction=None,
    )  # fmt: skip
    assert resolve_runtime(RuntimeConfig(gpu_memory_fraction=0.5), CPU) == ResolvedRuntime(
        amp=False, channels_last=False, compile=False, cudnn_benchmark=False, sgd_impl="default", nan_check_every=1,
        gpu_memory_fraction=None,
    )  # fmt: skip
    mine = RuntimeConfig(amp=False, compile=False, deterministic=True, sgd_impl="foreach", nan_check_every=7)
    rt = resolve_runtime(mine, CUDA)
    assert (rt.amp, rt.compile, rt.cudnn_benchmark, rt.sgd_impl, rt.nan_check_every) == (False, False, False,
                                                                                          "foreach", 7)  # fmt: skip
    assert sgd_options("fused") == {"fused": True} and sgd_options("default") == {}


@pytest.mark.parametrize("impl", ["foreach", "for_loop", "fused"])  # fused: CE, whose parameters all learn at once
def test_every_sgd_kernel_trains(impl: str, make_config: Callable[..., RunConfig]) -> None:
    result = Trainer(make_config("optim.epochs=1", f"runtime.sgd_impl={impl}")).fit()
    assert result.epochs_done == 1 and result.final["train/loss"] > 0
    assert not any(k.startswith("system/") for k in result.final)  # CPU: no CUDA memory facts


def test_an_out_of_memory_error_says_what_share_the_run_had(
    make_config: Callable[..., RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(make_config("optim.epochs=1"))

    def oom(*args: Any) -> dict[str, torch.Tensor]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.method, "losses", oom)
    with pytest.raises(GPUOutOfMemoryError, match=r"optim.batch_size=16: free the GPU.*lower optim.batch_size"):
        trainer.fit()
    info = trainer.run_info()
    assert info["runtime/amp"] is False and info["runtime/nan_check_every"] == 1
