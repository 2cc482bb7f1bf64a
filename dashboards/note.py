"""The parent run's description in the MLflow UI (``mlflow.note.content``, Markdown): the sweep's comparison where
MLflow users look — the objective, the baseline, the report's table (mean ± std over seeds, Δ with its 95% CI and
Holm p), and links to our dashboard page and to the report and plots logged on the run.

Written when a sweep ends (``dashboards.publish``) and refreshed while it runs (the driver, at most every 30 s).
Kept under ``NOTE_MAX_CHARS`` (MLflow refuses longer tag values): a table that does not fit loses its last rows and
says where the full one is.
"""

from __future__ import annotations

from typing import Any

from dashboards.layout import NOTE_MAX_CHARS, Tag, run_url
from dashboards.render import markdown
from dashboards.report import Report

MD_SPECIAL = "\\`*_{}[]<>()#+!|~"


def md_escape(text: str) -> str:
    """Plain text that Markdown (and the HTML under it) shows as written."""
    return "".join("\\" + ch if ch in MD_SPECIAL else ch for ch in text).replace("\n", " ")


def _fit_table(table: str, budget: int, full_link: str) -> str:
    """The table's header and as many rows as fit in ``budget`` characters, then a line naming what was left out."""
    if len(table) <= budget:
        return table
    lines = table.splitlines()
    head, rows = lines[:2], [ln for ln in lines[2:] if ln.startswith("|")]
    kept: list[str] = []
    more = f"\n\n… table truncated to fit MLflow's description: the full one is [report/report.md]({full_link})\n"
    size = sum(len(x) + 1 for x in head) + len(more)
    for row in rows:
        if size + len(row) + 1 > budget:
            break
        kept.append(row)
        size += len(row) + 1
    return "\n".join(head + kept) + more


def parent_note(
    report: Report,
    *,
    name: str,
    experiment_id: str,
    run_id: str,
    dashboard_url: str | None = None,
    running: bool = False,
    limit: int = NOTE_MAX_CHARS,
) -> str:
    """The Markdown description of a sweep's parent run (links inside the MLflow UI are relative to the page)."""
    report_link = run_url("", experiment_id, run_id, "report/report.md")
    plots_link = run_url("", experiment_id, run_id, "report/plots")
    o = report.objective
    baseline = report.chosen_baseline(None)
    state = "running — refreshed every 30 s" if running else "ended"
    head = (
        f"### {md_escape(name)} · sweep {md_escape(report.sweep_id)} ({state})\n\n"
        f"**Objective:** final {md_escape(o.metric)} ({o.mode}) · **baseline:** {md_escape(baseline or 'none')} · "
        f"{report.trials - report.excluded} of {report.trials} trials counted\n\n"
    )
    links = [f"[Plots]({plots_link})", f"[Report]({report_link})"]
    if dashboard_url:
        links.insert(0, f"[Dashboard]({dashboard_url.rstrip('/')}/dashboards/sweeps/{report.sweep_id})")
    foot = "\n\n" + " · ".join(links) + "\n"
    table = markdown(report) if report.variants else "No trial has finished yet.\n"
    return head + _fit_table(table, limit - len(head) - len(foot), report_link) + foot


def write_note(
    client: Any, run_id: str, report: Report, name: str, dashboard_url: str | None = None, running: bool = False
) -> str:
    """Set the parent run's description; returns it."""
    experiment_id = client.get_run(run_id).info.experiment_id
    text = parent_note(
        report, name=name, experiment_id=experiment_id, run_id=run_id, dashboard_url=dashboard_url, running=running
    )
    client.set_tag(run_id, Tag.NOTE, text)
    return text
