"""The dashboards' HTML pages (Jinja2 templates and static assets shipped in this package: nothing from a CDN).

The service gathers the data (sweeps from its database, trials and reports from MLflow) and calls these functions;
they only shape it for the templates.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from dashboards import layout
from dashboards.layout import Marks, RunState, experiment_url, run_url
from dashboards.render import note, table
from dashboards.report import Report

STATIC = Path(__file__).with_name("static")
TEMPLATES = Path(__file__).with_name("templates")
DOWNLOADS = [("md", "Markdown"), ("tex", "LaTeX"), ("csv", "CSV"), ("json", "JSON")]


@cache
def environment() -> Environment:
    """One immutable Jinja environment per process (templates compiled once)."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def index_page(sweeps: list[dict[str, Any]], total: int, links: dict[str, str | None], root: str = "") -> str:
    """``sweeps``: id, name, status, ``active`` (the job may still change: the page refreshes), trials, created_at, and
    (when MLflow answered) ``states`` and ``best``."""
    rows = []
    for s in sweeps:
        states = s.get("states")
        done = failed = 0
        progress = None
        if states is not None:
            done = states.get(RunState.FINISHED, 0)
            failed = states.get(RunState.FAILED, 0) + states.get(RunState.KILLED, 0)
            n = max(int(s["trials"]), 1)
            progress = {"done": round(100 * done / n, 1), "failed": round(100 * failed / n, 1)}
        rows.append({**s, "done": done, "failed": failed, "progress": progress, "best": _pct(s.get("best"))
                     if s.get("best") is not None else None, "created": str(s["created_at"])[:19]})  # fmt: skip
    active = any(s["active"] for s in sweeps)
    return (
        environment()
        .get_template("index.html")
        .render(sweeps=rows, total=total, links=links, root=root, refresh=10 if active else None)
    )


def pruned_variants(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> list[str]:
    """The variants racing has pruned and no extension reopened since (``layout.pruned_variants``), as
    ``service.extend`` counts them: only in a sweep with ``racing``, the names an extension's ``reopen`` may give."""
    if not (sweep.get("spec") or {}).get("racing"):
        return []
    return sorted(layout.pruned_variants(Marks.of(t) for t in trials))


def sweep_page(
    sweep: dict[str, Any],
    report: Report | None,
    trials: list[dict[str, Any]],
    plots: list[str],
    links: dict[str, str | None],
    *,
    error: str | None = None,
    root: str = "",
) -> str:
    """``sweep``: id, name, status, ``active``, message, spec; ``trials``: TrialView-like dicts; ``links['mlflow']``
    makes each run a link into the MLflow UI. The Extend form offers to reopen each variant racing pruned."""
    states = dict(Counter(str(t["status"]) for t in trials))
    header: list[str] = []
    rows: list[Any] = []
    if report is not None and report.variants:
        header, rows = table(report)
    mlflow = links.get("mlflow")
    view = [
        {**t, "top1": _pct(t["metrics"].get("final/test_top1")),
         "link": run_url(mlflow, t["experiment_id"], t["run_id"]) if mlflow and t.get("experiment_id") else None}
        for t in trials
    ]  # fmt: skip
    experiment = next((t["experiment_id"] for t in trials if t.get("experiment_id")), None)
    if mlflow and experiment:  # the header's MLflow link opens this sweep's runs, not the UI's home
        links = {**links, "mlflow": experiment_url(mlflow, experiment)}
    active = bool(sweep["active"])
    return (
        environment()
        .get_template("sweep.html")
        .render(
            sweep=sweep,
            states=states,
            description=(sweep.get("spec") or {}).get("description"),
            header=header,
            rows=rows,
            roles=[v.role for v in report.variants] if report else [],
            note=note(report) if report else "",
            downloads=DOWNLOADS,
            plots=plots,
            trials=view,
            pruned=pruned_variants(sweep, trials),
            links=links,
            error=error,
            root=root,
            version=sum(t.get("epochs_done", 0) for t in trials),  # a new image URL when the data moved on
            refresh=10 if active else None,
        )
    )


def login_page(links: dict[str, str | None], error: str | None = None, root: str = "") -> str:
    return environment().get_template("login.html").render(links=links, error=error, root=root, refresh=None)
