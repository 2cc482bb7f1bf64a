"""The device side of a run: speed knobs resolved per device, the CUDA memory share of a packed trial, the message of
an out-of-memory error, and the system facts a run records (device name, memory share, peak memory).

Unset knobs of ``runtime`` take the fast value on CUDA — bf16 autocast, channels_last, cuDNN autotuning, foreach SGD,
``torch.compile`` and a NaN check every 100 steps — and the plain one elsewhere, so CPU runs (tests, the digits demo)
are what they always were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch

from rskd_core.config import RuntimeConfig

NAN_CHECK_EVERY_CUDA = 100  # steps between looks at the device-side finite flag: ~4 host syncs per CIFAR epoch
MIB = 2**20


@dataclass(frozen=True)
class ResolvedRuntime:
    """``runtime`` with every device-dependent default decided."""

    amp: bool
    channels_last: bool
    compile: bool
    cudnn_benchmark: bool
    sgd_impl: str  # fused | foreach | for_loop | default (torch decides)
    nan_check_every: int
    gpu_memory_fraction: float | None

    def as_info(self) -> dict[str, Any]:
        return {f"runtime/{k}": v for k, v in asdict(self).items()}


def resolve_runtime(rt: RuntimeConfig, device: torch.device) -> ResolvedRuntime:
    cuda = device.type == "cuda"

    def pick(value: bool | None) -> bool:
        return cuda if value is None else value

    # not fused: its kernel refuses a step where some parameters have momentum and others none yet (RSKD's heads get
    # their first gradient when the warm-up ramp leaves 0), which foreach handles
    sgd = rt.sgd_impl if rt.sgd_impl != "auto" else ("foreach" if cuda else "default")
    return ResolvedRuntime(
        amp=pick(rt.amp),
        channels_last=pick(rt.channels_last),
        compile=pick(rt.compile),
        cudnn_benchmark=cuda and not rt.deterministic if rt.cudnn_benchmark is None else rt.cudnn_benchmark,
        sgd_impl=sgd,
        nan_check_every=rt.nan_check_every or (NAN_CHECK_EVERY_CUDA if cuda else 1),
        gpu_memory_fraction=rt.gpu_memory_fraction if cuda else None,
    )


def sgd_options(impl: str) -> dict[str, bool]:
    """Keyword arguments of ``torch.optim.SGD`` for an implementation name."""
    if impl == "fused":
        return {"fused": True}
    if impl == "foreach":
        return {"foreach": True}
    if impl == "for_loop":
        return {"foreach": False}
    return {}


class GPUOutOfMemoryError(torch.cuda.OutOfMemoryError):
    """CUDA ran out of memory; the message says what share of the GPU the run had and what to change. A sweep's
    trial fails with it like with any error, and Tune retries it (``max_failures``)."""


def cap_memory(device: torch.device, fraction: float | None) -> None:
    """Cap this process's CUDA caching allocator to ``fraction`` of the device (packed trials cannot starve each
    other: the one that outgrows its share fails, the others go on). Contexts and cuDNN's handles lie outside it."""
    if device.type == "cuda" and fraction is not None:
        torch.cuda.set_per_process_memory_fraction(fraction, device)


def device_memory_mb(device: torch.device) -> float:
    return torch.cuda.get_device_properties(device).total_memory / MIB


def oom_message(device: torch.device, fraction: float | None, err: BaseException, batch_size: int) -> str:
    total = device_memory_mb(device) if device.type == "cuda" else float("nan")
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else float("nan")
    share = (
        f"runtime.gpu_memory_fraction={fraction} ({fraction * total:,.0f} of {total:,.0f} MiB)"
        if fraction is not None
        else f"the whole GPU ({total:,.0f} MiB, no runtime.gpu_memory_fraction cap)"
    )
    advice = (
        "give each trial a larger share (resources.gpu in the sweep, which sets runtime.gpu_memory_fraction; "
        "fewer trials then share a GPU)"
        if fraction is not None
        else "free the GPU of other processes"
    )
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (
        f"CUDA out of memory with {share}, peak allocated {peak:,.0f} MiB, optim.batch_size={batch_size}: {advice}, "
        f"or lower optim.batch_size, or turn on runtime.amp (bf16). ({first})"
    )


@contextlib.contextmanager
def explain_oom(device: torch.device, fraction: float | None, batch_size: int) -> Iterator[None]:
    """Re-raise CUDA's out-of-memory error as :class:`GPUOutOfMemoryError` with a message a person can act on."""
    try:
        yield
    except GPUOutOfMemoryError:
        raise
    except torch.cuda.OutOfMemoryError as err:
        raise GPUOutOfMemoryError(oom_message(device, fraction, err, batch_size)) from err


def system_info(device: torch.device, fraction: float | None) -> dict[str, Any]:
    """Run-level facts: device memory and the share this run may use (CUDA only)."""
    if device.type != "cuda":
        return {}
    return {"device_memory_mb": device_memory_mb(device), "gpu_memory_fraction": fraction}


def system_metrics(device: torch.device, fraction: float | None) -> dict[str, float]:
    """Per-epoch ``system/*`` metrics (CUDA only): peak allocated and currently reserved memory, in MiB, and the
    share of the GPU the run may use (1.0 uncapped) — numbers, so a sweep's MLflow logs them with the epoch."""
    if device.type != "cuda":
        return {}
    return {
        "system/peak_memory_mb": torch.cuda.max_memory_allocated(device) / MIB,
        "system/reserved_memory_mb": torch.cuda.memory_reserved(device) / MIB,
        "system/gpu_memory_fraction": 1.0 if fraction is None else fraction,
        "system/device_memory_mb": device_memory_mb(device),
    }
