"""``rskd``: train one run, list what is registered.

    rskd train CONFIG.yaml [--set dotted.path=value ...] [--method NAME] [--out DIR] [--resume DIR]
    rskd list methods|models|teachers|datasets

Environment: ``RSKD_DATA_ROOT`` (folder holding CIFAR etc.; digits and synthetic need none).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rskd_core.config import RunConfig
from rskd_core.config_io import ConfigError, apply_overrides, read_config_file, swap_method, validate


def _registries() -> dict[str, list[str]]:
    from rskd_core.data import DATASETS
    from rskd_core.methods import METHODS
    from rskd_core.models import MODELS
    from rskd_core.teachers import TEACHERS

    return {
        "methods": METHODS.names(),
        "models": MODELS.names(),
        "teachers": TEACHERS.names(),
        "datasets": DATASETS.names(),
    }


def cmd_list(args: argparse.Namespace) -> int:
    for name in _registries()[args.what]:
        print(name)
    return 0


def _default_out(method: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{method}"


def _train_config(args: argparse.Namespace, resume_dir: Path | None) -> RunConfig:
    """The run's config: a file, or the resumed run's config.json, with --method and --set applied."""
    if args.config is not None:
        data = read_config_file(args.config)
    elif resume_dir is not None:
        data = read_config_file(resume_dir / "config.json")
    else:
        raise ConfigError("give a CONFIG file, or --resume DIR to continue a run")
    if args.method:
        data = swap_method(data, args.method)
    return validate(apply_overrides(data, args.set))


def _write_run_files(out: Path, cfg: RunConfig, info: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"rskd train: method={cfg.method.name} teacher={cfg.teacher.rule} model={cfg.model.name} "
        f"data={cfg.data.name} device={info['device']} epochs={cfg.optim.epochs} out={out}",
        file=sys.stderr,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from rskd_core.data import DataError
    from rskd_core.engine import Checkpointer, JsonlWriter, NonFiniteLossError, ProgressBar, ResumeError, Trainer

    resume_dir = Path(args.resume) if args.resume else None
    try:
        cfg = _train_config(args, resume_dir)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else resume_dir or _default_out(cfg.method.name)
    resume_from = None
    if resume_dir is not None:
        resume_from = resume_dir / "checkpoint.pt"
        if not resume_from.is_file():
            print(f"error: --resume {resume_dir}: no checkpoint.pt there", file=sys.stderr)
            return 2
    callbacks = [Checkpointer(out), JsonlWriter(out / "metrics.jsonl")]
    if not args.quiet:
        callbacks.append(ProgressBar())
    try:
        trainer = Trainer(cfg, callbacks, data_root=os.environ.get("RSKD_DATA_ROOT"))
        _write_run_files(out, cfg, trainer.run_info())
        result = trainer.fit(resume_from=resume_from)
    except (ConfigError, DataError, ResumeError, FileNotFoundError, NonFiniteLossError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; resume with: rskd train --resume {out}", file=sys.stderr)
        return 130
    final = result.final
    summary = {
        "out": str(out),
        "epochs": result.epochs_done,
        "final/test_top1": final.get("test/top1"),
        "final/test_ece": final.get("test/ece"),
        "best/test_top1": result.best_top1,
        "best/epoch": result.best_epoch,
    }
    print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rskd", description="RSKD sweeps: train and compare Self-KD methods")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one run")
    train.add_argument("config", nargs="?", help="YAML or JSON RunConfig")
    train.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override, e.g. optim.lr=0.05")
    train.add_argument("--method", help="swap in this method with its defaults (and its teacher rule if needed)")
    train.add_argument("--out", help="output folder (default runs/<time>-<method>)")
    train.add_argument("--resume", help="continue the run in this folder from its checkpoint.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.set_defaults(func=cmd_train)

    lst = sub.add_parser("list", help="list registered names")
    lst.add_argument("what", choices=["methods", "models", "teachers", "datasets"])
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
