"""A finished sweep's comparison, logged on its MLflow parent run (the worker calls this when a sweep ends).

Artifacts under ``report/``: report.json, report.md, report.tex, report.csv and plots/{curves,deltas,heatmap}.png.
Regenerate them on demand (after a resume, or with a newer version of this code)::

    python -m dashboards publish --tracking-uri URI --sweep-id ID
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from dashboards.collect import collect, sweep_runs
from dashboards.layout import KIND_SWEEP
from dashboards.note import write_note
from dashboards.plots import render_plots
from dashboards.render import FORMATS
from dashboards.report import Report, build_report

SUFFIX = {"md": "md", "latex": "tex", "csv": "csv"}


def write_report(folder: Path, report: Report, plots: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / "report.json"]
    out[0].write_text(report.model_dump_json(indent=2))
    for fmt, render in FORMATS.items():
        path = folder / f"report.{SUFFIX[fmt]}"
        path.write_text(render(report, None))
        out.append(path)
    (folder / "plots").mkdir(exist_ok=True)
    for name, png in plots.items():
        path = folder / "plots" / f"{name}.png"
        path.write_bytes(png)
        out.append(path)
    return out


def publish(
    client: Any,
    sweep_id: str,
    parent_run_id: str,
    experiment: str | None,
    objective: dict[str, str],
    dashboard_url: str | None = None,
) -> Report:
    """The report and plots under ``report/`` and the comparison as the parent run's description (``note.py``)."""
    data = collect(client, sweep_id, experiment)
    report = build_report(data, objective)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(Path(tmp), report, render_plots(data, report))
        client.log_artifacts(parent_run_id, tmp, artifact_path="report")
    write_note(client, parent_run_id, report, experiment or sweep_id, dashboard_url)
    return report


def parent_run(client: Any, sweep_id: str) -> Any:
    runs = sweep_runs(client, sweep_id, kind=KIND_SWEEP)
    if not runs:
        raise SystemExit(f"no sweep {sweep_id!r} in this MLflow store (check --tracking-uri)")
    return runs[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish", help="recompute a sweep's report and plots and log them on its parent run")
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--sweep-id", required=True)
    p.add_argument("--dashboard-url", help="where a browser reaches the service (the description links its page)")
    args = parser.parse_args(argv)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri)
    parent = parent_run(client, args.sweep_id)
    spec = json.loads(Path(client.download_artifacts(parent.info.run_id, "spec.json")).read_text())
    experiment = client.get_experiment(parent.info.experiment_id).name
    report = publish(
        client, args.sweep_id, parent.info.run_id, experiment, spec.get("objective") or {}, args.dashboard_url
    )
    print(FORMATS["md"](report, None))
    return 0
