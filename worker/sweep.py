"""The Ray Job entrypoint of a sweep.

    python -m worker.sweep run --spec SPEC.yaml --sweep-id ID     # or --spec-b64 (the spec travels with the job)
    python -m worker.sweep resume --sweep-id ID [--spec SPEC.yaml]
    python -m worker.sweep run --sweep-id ID --spec UNION.yaml --extension N   # only the trials that are new
        [--reopen VARIANT …]   # a variant racing pruned before gets its new trials too (by default it gets none)
    python -m worker.sweep validate --spec SPEC.yaml               # expand and list the trials, run nothing

Environment: ``MLFLOW_TRACKING_URI`` (default: SQLite under ``RSKD_HOME``), ``RSKD_STORAGE_PATH`` (Tune experiment
state; default ``RSKD_HOME/storage``), ``RSKD_DATA_ROOT``, the limits ``RSKD_MAX_TRIALS`` and ``RSKD_MAX_EPOCHS``,
``RSKD_MLFLOW_PATIENCE_S`` (all read into ``DriverSettings``), ``RAY_ADDRESS`` (unset: a local Ray is started).
SIGTERM (what ``ray job stop`` sends) is handled like Ctrl-C: Tune stops the trials and saves its state, every
unfinished MLflow run is marked KILLED, and ``resume`` can continue later. Exit codes: 0 finished, 1 some trial
failed, 2 bad spec, 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import logging
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from dashboards.layout import RunState
from worker.driver import DriverSettings, checked_trials, job_name, load_saved_spec, run_sweep
from worker.spec import SpecError, SweepSpec, parse_spec


def code_version() -> str:
    import rskd_core

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{rskd_core.__version__}+{sha}" if sha else rskd_core.__version__


def read_spec(args: argparse.Namespace) -> SweepSpec | None:
    if getattr(args, "spec_b64", None):
        return parse_spec(base64.b64decode(args.spec_b64).decode(), fmt="json")
    if getattr(args, "spec", None):
        path = Path(args.spec)
        if not path.is_file():
            raise SpecError("invalid sweep spec", [f"spec file not found: {path}"])
        return parse_spec(path.read_text(), fmt="json" if path.suffix == ".json" else "yaml")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.sweep", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "resume", "validate"):
        p = sub.add_parser(name)
        p.add_argument("--spec", help="YAML or JSON SweepSpec file")
        p.add_argument("--spec-b64", help="the spec as base64-encoded JSON (how the service sends it)")
        if name != "validate":
            p.add_argument("--sweep-id", required=True)
            p.add_argument("--extension", type=int, default=0, help="n > 0: the sweep's n-th extension (new trials)")
            more = "with --extension: a variant pruned before that gets its new trials (repeatable)"
            p.add_argument("--reopen", action="append", default=[], metavar="VARIANT", help=more)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        settings = DriverSettings.from_env(code_version=code_version())
    except ValidationError as err:
        print(f"error: bad settings in the environment: {err}", file=sys.stderr)
        return 2
    try:
        spec = read_spec(args)
        if spec is None:
            if args.command != "resume":
                raise SpecError("invalid sweep spec", ["give --spec FILE or --spec-b64 DATA"])
            spec = load_saved_spec(settings, job_name(args.sweep_id, args.extension))
        if args.command == "validate":
            for t in checked_trials(spec, settings):
                print(f"{t.trial_id}  {t.role:8}  {t.variant}  seed={t.seed}")
            return 0
        checked_trials(spec, settings)
    except (SpecError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    resume = args.command == "resume"
    outcome = run_sweep(spec, args.sweep_id, settings, resume=resume, extension=args.extension, reopen=args.reopen)
    print(
        f"sweep {args.sweep_id}: {outcome.status} — {outcome.finished} finished, {outcome.failed} failed, "
        f"{outcome.killed} killed of {outcome.trials}"
    )
    return {RunState.FINISHED: 0, RunState.FAILED: 1, RunState.KILLED: 130}[outcome.status]


if __name__ == "__main__":
    raise SystemExit(main())
