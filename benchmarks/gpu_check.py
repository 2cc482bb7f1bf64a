"""The prepared device check of issue 13: one GPU, one run, one JSON object (≤ 8 minutes with start-up).

    bash benchmarks/gpu_check.sh                  # on the GPU machine (installs the carried pydantic wheels first)
    python benchmarks/gpu_check.py --cpu-smoke    # CI: tiny sizes on CPU, every section in seconds

Sections (each one records its own error instead of stopping the others):

* ``pytest_gpu``: ``pytest -m gpu tests/gpu`` — fast settings vs fp32 eager accuracy, resume, the NaN guard, the
  memory cap, no host sync in the step (all skip without CUDA);
* ``steps``: images/s of PreAct ResNet-18, batch 128, CIFAR-shaped synthetic data, bf16 + channels_last, eager, for
  CE, RSKD-L (ema), RSKD-L (pred_bank), RSKD-ML (ema), PS-KD, CS-KD and DLB, and each one's step time over CE's
  (``benchmarks/step_overhead.py``'s interleaved rounds, median after warm-up);
* ``compile``: the same CE step under ``torch.compile``: compile seconds, steady images/s, and the epochs of a
  CIFAR run after which compiling has paid for itself (skipped on CPU: compiling even the tiny model took 138 s on
  the 2-core CI machine);
* ``packing``: aggregate images/s of 1, 2, 4 and 8 concurrent CE trainer processes on the one GPU, each capped to
  0.95/k of its memory (plain processes: Ray is not installed on the GPU machine and its wheel is too large to carry);
* ``epoch``: one CIFAR-100-sized epoch (50,000 synthetic 32×32 images, 100 classes) of CE at the fastest setting.

Needs only torch (+ torchvision), pydantic, pyyaml and pytest: nothing of Ray, MLflow or FastAPI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import step_overhead  # noqa: E402

from rskd_core.config import TeacherConfig  # noqa: E402
from rskd_core.config_io import validate  # noqa: E402
from rskd_core.engine import Trainer  # noqa: E402
from rskd_core.teachers import create_teacher  # noqa: E402

STEP_VARIANTS = ["ce", "rskd_l/ema", "rskd_l/pred_bank", "rskd_ml/ema", "ps_kd", "cs_kd", "dlb"]
CIFAR_STEPS_PER_EPOCH = math.ceil(50_000 / 128)
SIZES: dict[str, dict[str, Any]] = {
    "gpu": {
        "model": "preact_resnet18", "batch_size": 128, "image_size": 32, "classes": 100, "train_size": 4096,
        "steps": 20, "rounds": 5, "packing": [1, 2, 4, 8], "packing_s": 6.0, "packing_budget_s": 150,
        "epoch_train": 50_000, "epoch_test": 10_000, "pytest_timeout_s": 240,
    },
    "smoke": {
        "model": "preact_resnet_tiny", "batch_size": 16, "image_size": 8, "classes": 10, "train_size": 64,
        "steps": 1, "rounds": 1, "packing": [1, 2], "packing_s": 0.5, "packing_budget_s": 120,
        "epoch_train": 256, "epoch_test": 64, "pytest_timeout_s": 120,
    },
}  # fmt: skip


def step_args(size: dict[str, Any], device: str, **extra: Any) -> argparse.Namespace:
    """The namespace ``step_overhead.make_trainer`` reads: fast settings on CUDA (bf16, channels_last), eager."""
    cuda = device.startswith("cuda")
    return argparse.Namespace(
        device=device,
        model=size["model"],
        batch_size=size["batch_size"],
        image_size=size["image_size"],
        classes=size["classes"],
        train_size=size["train_size"],
        steps=size["steps"],
        rounds=size["rounds"],
        amp=cuda,
        channels_last=cuda,
        **extra,
    )


def new_images_per_step(variant: str, batch_size: int) -> int:
    """Training-set images a step consumes (CS-KD's partners and DLB's repeats are not new): an epoch's pace."""
    rule = create_teacher(TeacherConfig.model_validate(step_overhead.VARIANTS[variant]["teacher"]))
    return rule.loader_needs(batch_size).batch_size


# ---------------------------------------------------------------- sections


def run_pytest_gpu(size: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider", "-rs",
               "-o", "timeout=150", f"--junitxml={junit}"]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=size["pytest_timeout_s"])
        tests = []
        if junit.is_file():
            for case in ET.parse(junit).getroot().iter("testcase"):
                outcome, message = "passed", ""
                for tag in ("failure", "error", "skipped"):
                    node = case.find(tag)
                    if node is not None:
                        outcome = {"failure": "failed"}.get(tag, tag)
                        message = (node.get("message") or "")[:500]
                seconds = float(case.get("time") or 0)
                tests.append({"name": case.get("name"), "outcome": outcome, "s": seconds, "message": message})
    outcomes = {"passed": "passed", "failed": "failed", "errors": "error", "skipped": "skipped"}
    counts = {k: sum(t["outcome"] == v for t in tests) for k, v in outcomes.items()}
    return {"exit_code": proc.returncode, "wall_s": time.perf_counter() - start, **counts, "tests": tests,
            "tail": proc.stdout[-1500:] if proc.returncode not in (0, 5) else ""}  # fmt: skip


def run_steps(size: dict[str, Any], device: str) -> dict[str, Any]:
    args = step_args(size, device)
    timed = step_overhead.bench_steps(args, torch.device(device), STEP_VARIANTS)
    ips = {n: new_images_per_step(n, size["batch_size"]) / timed["step_s"][n] for n in STEP_VARIANTS}
    return {
        "setting": "bf16 autocast + channels_last, eager" if device.startswith("cuda") else "fp32, eager",
        "steps_per_round": size["steps"],
        "rounds": size["rounds"],
        "images_per_s": ips,
        "step_s": timed["step_s"],
        "step_time_ratio_to_ce": timed["ratio_to_ce"],
        "note": "images_per_s counts new training images (an epoch's pace); step times are medians over rounds",
    }


def run_compile(size: dict[str, Any], device: str) -> dict[str, Any]:
    if not device.startswith("cuda"):
        return {"skipped": "CPU: compiling even the tiny model took 138 s on the 2-core CI machine; GPU only"}
    dev = torch.device(device)
    eager = step_overhead.make_trainer(step_args(size, device), step_overhead.VARIANTS["ce"])
    compiled = step_overhead.make_trainer(step_args(size, device, compile=True), step_overhead.VARIANTS["ce"])
    out: dict[str, Any] = {}
    for name, trainer in (("eager", eager), ("compiled", compiled)):
        trainer.model.train()
        batches = [b for _, b in zip(range(size["steps"]), trainer.data.train.epoch(0), strict=False)]
        start = time.perf_counter()
        step_overhead.time_steps(trainer, batches[:1], dev, 0)  # compiles (and lets cuDNN choose)
        out[f"{name}_first_step_s"] = time.perf_counter() - start
        step_overhead.time_steps(trainer, batches, dev, 0)
        out[f"{name}_step_s"] = statistics.median(
            step_overhead.time_steps(trainer, batches, dev, 0) for _ in range(size["rounds"])
        )
    saved = out["eager_step_s"] - out["compiled_step_s"]
    compile_s = out["compiled_first_step_s"] - out["eager_first_step_s"]
    # a run compiles twice more: the epoch's last, smaller batch and the evaluation stays eager
    out["compile_s"] = compile_s
    out["speedup"] = out["eager_step_s"] / out["compiled_step_s"]
    out["pays_after_epochs"] = compile_s / (saved * CIFAR_STEPS_PER_EPOCH) if saved > 0 else None
    out["pays_in_200_epochs"] = saved > 0 and compile_s < 200 * CIFAR_STEPS_PER_EPOCH * saved
    return out


def run_packing(size: dict[str, Any], device: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for k in size["packing"]:
        if time.perf_counter() - start > size["packing_budget_s"]:
            results[str(k)] = {"skipped": f"packing took over {size['packing_budget_s']} s before it"}
            continue
        fraction = round(0.95 / k, 4) if device.startswith("cuda") else None
        with tempfile.TemporaryDirectory() as tmp:
            go = Path(tmp) / "go"
            which = "smoke" if size is SIZES["smoke"] else "gpu"
            cmd = [sys.executable, __file__, "--pack-worker", "--device", device, "--go", str(go),
                   "--seconds", str(size["packing_s"]), "--size", which]  # fmt: skip
            if fraction is not None:
                cmd += ["--fraction", str(fraction)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(k)]
            try:
                workers = run_packed(procs, go)
            finally:  # a worker that failed must not leave the others waiting for the go file
                for p in procs:
                    if p.poll() is None:
                        p.kill()
        results[str(k)] = {
            "images_per_s": sum(w["images"] / w["seconds"] for w in workers),
            "memory_fraction_each": fraction,
            "peak_memory_mb_each": [w.get("peak_memory_mb") for w in workers],
        }
    one = results[str(size["packing"][0])]["images_per_s"]
    for r in results.values():
        if "images_per_s" in r:
            r["ratio_to_one"] = r["images_per_s"] / one
    how = "plain subprocesses; Ray is not installed on the GPU machine"
    return {"processes": results, "how": how, "model": size["model"]}


def run_packed(procs: list[subprocess.Popen[str]], go: Path) -> list[dict[str, Any]]:
    """Wait until every worker has built its trainer and warmed up, start them together, collect their counts."""
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"a packing worker did not start (exit code {p.poll()}): {line!r}")
    go.touch()
    return [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]


def pack_worker(args: argparse.Namespace) -> None:
    """One packed trial: a CE trainer under its memory cap, steps for ``--seconds`` after the go file appears."""
    size = SIZES[args.size]
    torch.set_num_threads(1)
    dev = torch.device(args.device)
    ce = step_overhead.VARIANTS["ce"]
    trainer = step_overhead.make_trainer(step_args(size, args.device, gpu_memory_fraction=args.fraction), ce)
    trainer.model.train()
    batches = [b for _, b in zip(range(max(size["steps"], 4)), trainer.data.train.epoch(0), strict=False)]
    step_overhead.time_steps(trainer, batches, dev, 0)  # warm-up
    print("READY", flush=True)
    go = Path(args.go)
    while not go.exists():
        time.sleep(0.01)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        step_overhead.time_steps(trainer, batches, dev, 0)  # ends with a sync: the time is the GPU's
        images += len(batches) * new_images_per_step("ce", size["batch_size"])
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    print(json.dumps({"images": images, "seconds": time.perf_counter() - start, "peak_memory_mb": peak}), flush=True)


def run_epoch(size: dict[str, Any], device: str, compile_speedup: float | None) -> dict[str, Any]:
    """Two epochs of CE, eager with the fast CUDA settings; the compiled epoch is estimated from ``compile``'s
    speed-up (compiling here too would cost two more compilations: the full and the epoch's last, smaller batch)."""
    cfg = validate(
        {
            "seed": 0,
            "data": {
                "name": "synthetic",
                "image_size": size["image_size"],
                "num_classes": size["classes"],
                "train_size": size["epoch_train"],
                "test_size": size["epoch_test"],
                "loader": "device",
                "augment": {"crop_padding": 4, "flip": True},
            },
            "model": {"name": size["model"]},
            "optim": {"batch_size": size["batch_size"], "epochs": 2, "milestones": [], "schedule": "cosine"},
            "runtime": {"device": device, "compile": False},
        }
    )
    start = time.perf_counter()
    trainer = Trainer(cfg)
    built = time.perf_counter() - start
    result = trainer.fit()
    return {
        "train_images": size["epoch_train"],
        "setting": {k.removeprefix("runtime/"): v for k, v in trainer.rt.as_info().items()},
        "build_s": built,
        "first_epoch_s": result.history[0]["time/epoch_s"],
        "second_epoch_s": result.history[1]["time/epoch_s"],
        "images_per_s": result.history[1]["throughput/samples_per_s"],
        "compiled_epoch_s_estimate": result.history[1]["time/epoch_s"] / compile_speedup if compile_speedup else None,
        "peak_memory_mb": result.history[1].get("system/peak_memory_mb"),
        "fit_s": time.perf_counter() - start,
    }


def section(result: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    start = time.perf_counter()
    try:
        result[name] = {**fn(), "section_s": time.perf_counter() - start}
    except Exception as err:  # one section's failure must not hide the others' figures
        result[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:],
                        "section_s": time.perf_counter() - start}  # fmt: skip
    print(f"[gpu_check] {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU: every section in seconds")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --cpu-smoke)")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    parser.add_argument("--budget-s", type=float, default=400.0, help="start no section after this many seconds")
    parser.add_argument("--pack-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", default="gpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.device = args.device or ("cpu" if args.cpu_smoke else "cuda")
    if args.pack_worker:
        pack_worker(args)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --cpu-smoke")
    size = SIZES["smoke" if args.cpu_smoke else "gpu"]
    cuda = args.device.startswith("cuda")
    if not cuda:
        torch.set_num_threads(1)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "device_memory_mb": torch.cuda.get_device_properties(0).total_memory / 2**20 if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "ray": "not installed on the GPU machine: packing runs plain processes, each with its memory cap",
        "goals": {"ce_images_per_s": 20_000, "rskd_l_ema_step_ratio": 1.4, "packing_4_ratio": 1.5},
    }
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "pytest_gpu": lambda: run_pytest_gpu(size),
        "steps": lambda: run_steps(size, args.device),
        "compile": lambda: run_compile(size, args.device),
        "packing": lambda: run_packing(size, args.device),
        "epoch": lambda: run_epoch(size, args.device, result.get("compile", {}).get("speedup")),
    }
    for name, fn in sections.items():
        if name in args.skip:
            continue
        if time.perf_counter() - started > args.budget_s:
            result[name] = {"skipped": f"out of time: {args.budget_s:.0f} s spent before it"}
            continue
        section(result, name, fn)
    result["wall_s"] = time.perf_counter() - started
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu_check.json").write_text(text)


if __name__ == "__main__":
    main()
