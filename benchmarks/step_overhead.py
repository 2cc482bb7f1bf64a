"""Per-step cost of RSKD against plain CE, and the device-resident loader against a torchvision DataLoader.

    python benchmarks/step_overhead.py                 # CPU: tiny PreAct ResNet, 32 px, batch 64
    python benchmarks/step_overhead.py --device cuda   # GPU: PreAct ResNet-18, batch 128, bf16 AMP, channels_last

Every variant trains the same model on the same batches (images per step equal: last_batch's steps hold B/2 new and
B/2 repeated images). Variants are interleaved round by round so that drift on a shared machine hits all of them;
the figure per variant is the median over rounds. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rskd_core.config_io import validate
from rskd_core.data import AugmentSpec, DeviceLoader, LoaderOptions, TorchLoader
from rskd_core.engine import Trainer
from rskd_core.methods import Progress

VARIANTS: dict[str, dict[str, Any]] = {
    "ce": {"method": {"name": "ce"}, "teacher": {"rule": "none"}},
    "rskd_l/ema": {"method": {"name": "rskd", "layers": ["last"]}, "teacher": {"rule": "ema"}},
    "rskd_l/prev_epoch": {"method": {"name": "rskd", "layers": ["last"]}, "teacher": {"rule": "prev_epoch"}},
    "rskd_l/last_batch": {"method": {"name": "rskd", "layers": ["last"]}, "teacher": {"rule": "last_batch"}},
    "rskd_l/pred_bank": {"method": {"name": "rskd", "layers": ["last"]}, "teacher": {"rule": "pred_bank"}},
    "rskd_ml/ema": {
        "method": {"name": "rskd", "layers": ["last", "stage1", "stage2", "stage3"]},
        "teacher": {"rule": "ema"},
    },
    # the baselines, each with its own teacher rule (tf_kd_self's frozen teacher is timed untrained: same cost)
    "label_smoothing": {"method": {"name": "label_smoothing"}, "teacher": {"rule": "none"}},
    "tf_kd_reg": {"method": {"name": "tf_kd_reg"}, "teacher": {"rule": "none"}},
    "tf_kd_self": {"method": {"name": "tf_kd_self"}, "teacher": {"rule": "frozen"}},
    "cs_kd": {"method": {"name": "cs_kd"}, "teacher": {"rule": "class_pair"}},
    "ps_kd": {"method": {"name": "ps_kd"}, "teacher": {"rule": "pred_bank"}},
    "byot": {"method": {"name": "byot"}, "teacher": {"rule": "none"}},
    "dlb": {
        "method": {"name": "dlb"},
        "teacher": {"rule": "last_batch", "repeat_split": "full", "repeat_view": "second"},
    },
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(args: argparse.Namespace, variant: dict[str, Any]) -> Trainer:
    cfg = validate(
        {
            "seed": 0,
            "data": {
                "name": "synthetic",
                "image_size": args.image_size,
                "num_classes": args.classes,
                "train_size": args.train_size,
                "test_size": 64,
                "loader": "device",
                "augment": {"crop_padding": 4, "flip": True},
            },
            "model": {"name": args.model},
            "optim": {"batch_size": args.batch_size, "epochs": 10, "milestones": [], "schedule": "constant"},
            "runtime": {
                "device": args.device,
                "amp": args.amp,
                "channels_last": args.channels_last,
                "compile": getattr(args, "compile", False),
                "gpu_memory_fraction": getattr(args, "gpu_memory_fraction", None),
            },
            "teacher": variant["teacher"],
            "method": {**variant["method"], **({"warmup_epochs": 0} if variant["method"]["name"] == "rskd" else {})},
        }
    )
    return Trainer(cfg)


def time_steps(trainer: Trainer, batches: list[Any], device: torch.device, epoch: int) -> float:
    """Seconds per optimizer step over ``batches`` (one batch is the loader's, the rule may extend it)."""
    sync(device)
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        trainer.train_step(batch, Progress(epoch, i, len(batches), 10))
    sync(device)
    return (time.perf_counter() - start) / len(batches)


def bench_steps(args: argparse.Namespace, device: torch.device, names: list[str] | None = None) -> dict[str, Any]:
    """Median seconds per step of each variant (all of VARIANTS, or ``names``; ``ce`` is always among them)."""
    chosen = names or list(VARIANTS)
    trainers = {name: make_trainer(args, VARIANTS[name]) for name in dict.fromkeys(["ce", *chosen])}
    feeds: dict[str, list[Any]] = {}
    for name, t in trainers.items():
        t.model.train()
        t.method.train()
        t.teacher.on_epoch_start(1)
        it = t.data.train.epoch(0)
        feeds[name] = [next(it) for _ in range(args.steps)]
        # warm-up; it also fills pred_bank's rows and last_batch's cache, so the timed steps are steady-state
        time_steps(t, feeds[name], device, 1)
    samples: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, t in trainers.items():
            samples[name].append(time_steps(t, feeds[name], device, 1))
    med = {name: statistics.median(v) for name, v in samples.items()}
    return {
        "step_s": med,
        "step_s_spread": {n: [min(v), max(v)] for n, v in samples.items()},
        "ratio_to_ce": {n: med[n] / med["ce"] for n in med if n != "ce"},
    }


def bench_loader(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    n = args.loader_images
    x = torch.randn(n, 3, args.image_size, args.image_size, generator=g)
    y = torch.randint(0, args.classes, (n,), generator=g)
    aug = AugmentSpec(crop_padding=4, flip=True)
    dev = DeviceLoader(x, y, LoaderOptions(args.batch_size, device, shuffle=True, augment=aug))
    tv = TorchLoader.from_tensors(
        x, y, LoaderOptions(args.batch_size, device, shuffle=True, augment=aug, num_workers=args.workers)
    )

    def ips(loader: Any, epoch: int) -> float:
        sync(device)
        start = time.perf_counter()
        count = 0
        for batch in loader.epoch(epoch):
            count += len(batch)
        sync(device)
        return count / (time.perf_counter() - start)

    ips(dev, 0)  # warm-up
    dev_runs, tv_runs = [], []
    for r in range(args.loader_rounds):  # interleaved
        dev_runs.append(ips(dev, r + 1))
        tv_runs.append(ips(tv, r + 1))
    d, t = statistics.median(dev_runs), statistics.median(tv_runs)
    return {"device_resident_ips": d, "dataloader_ips": t, "ratio": d / t, "dataloader_workers": args.workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="default: preact_resnet_tiny on CPU, preact_resnet18 on CUDA")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 on CPU, 128 on CUDA")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=None, help="steps per timed block (default 4 CPU, 20 CUDA)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--loader-images", type=int, default=10_000)
    parser.add_argument("--loader-rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-loader", action="store_true")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.model = args.model or ("preact_resnet18" if cuda else "preact_resnet_tiny")
    args.batch_size = args.batch_size or (128 if cuda else 64)
    args.steps = args.steps or (20 if cuda else 4)
    args.amp = cuda
    args.channels_last = cuda
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "amp": args.amp,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
    }
    result.update(bench_steps(args, device))
    if not args.skip_loader:
        result["loader"] = bench_loader(args, device)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
