"""Ablation tables from a report (``dashboards.report.build_report``): Markdown, LaTeX (booktabs) and CSV.

Rows are variants then baselines; columns the metrics as mean ± std over the counted seeds (accuracies in %, ECE in
% as logged, NLL in nats), the best mean of each column in bold, then Δ of the objective against the chosen baseline
with its 95% CI and Holm-corrected p. ``†`` marks fewer than 3 seeds.
The CSV keeps raw fractions, one column per number.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboards.layout import metric_info
from dashboards.report import TABLE_METRICS, Report

ORDER = ["final_top1", "best_top1", "final_top5", "final_nll", "final_ece"]


def header_label(column: str) -> str:
    """``final_top1`` → ``Top-1``, ``best_top1`` → ``Best top-1``."""
    label = metric_info(column).label
    return f"Best {label[0].lower()}{label[1:]}" if column.startswith("best_") else label


def _shown(metric: str, x: float) -> str:
    info = metric_info(metric)
    return f"{x * info.scale:.{info.decimals}f}"


def _fmt(metric: str, mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return _shown(metric, mean) + ("" if std is None else f" ± {_shown(metric, std)}")


def _best(report: Report, metric: str) -> float | None:
    means = [m for v in report.variants if (m := v.metrics[metric].mean) is not None]
    return metric_info(metric).best_of(means) if means else None


def _delta(report: Report, variant: str, baseline: str | None) -> tuple[str, str, str]:
    """Δ [CI], Holm p, and the seeds the comparison needs for 80 % power (an estimate, ``dashboards.power``)."""
    c = report.comparison(variant, baseline)
    if c is not None and c.delta is not None:
        s = metric_info(report.objective.column).scale
        d = f"{c.delta * s:+.2f}"
        if c.ci95 is not None:
            d += f" [{c.ci95[0] * s:+.2f}, {c.ci95[1] * s:+.2f}]"
        p = "–" if c.p_holm is None else f"{c.p_holm:.3g}" + ("‡" if c.no_spread else "")
        return d, p, "–" if c.seeds_needed is None else f"~{c.seeds_needed}"
    return ("ref", "", "") if variant == baseline else ("–", "–", "–")


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False


def table(report: Report, baseline: str | None = None) -> tuple[list[str], list[list[Cell]]]:
    """Header and rows of the ablation table (the one source of the Markdown, LaTeX and HTML tables)."""
    baseline = report.chosen_baseline(baseline)
    best = {m: _best(report, m) for m in ORDER}
    rows = []
    for v in report.variants:
        cells = [Cell(v.variant + ("§" if v.pruned else "")), Cell(f"{v.n}" + ("†" if v.low_n else ""))]
        for m in ORDER:
            stat, b = v.metrics[m], best[m]
            top = b is not None and stat.mean is not None and _shown(m, stat.mean) == _shown(m, b)
            cells.append(Cell(_fmt(m, stat.mean, stat.std), top))  # ties as shown are all bold
        cells += [Cell(x) for x in _delta(report, v.variant, baseline)]
        rows.append(cells)
    return _header(report, baseline), rows


def _header(report: Report, baseline: str | None) -> list[str]:
    delta = f"Δ {header_label(report.objective.column)} vs {baseline or '–'} [95% CI]"
    return ["Variant", "n", *(header_label(m) for m in ORDER), delta, "p (Holm)", "seeds for 80%"]


def note(report: Report) -> str:
    o = report.objective
    return (
        "Mean ± std over seeds of the final epoch; accuracies and ECE in %, NLL in nats. "
        f"Objective {o.metric} ({o.mode}); "
        f"{report.excluded} of {report.trials} trials excluded (failed, killed, unfinished or stopped early); "
        "† fewer than 3 seeds; Δ in points of the table's unit: paired t over shared seeds, else Welch; "
        "p Holm-corrected over the sweep's comparisons; ‡ every seed gave the same difference, so the t test has no "
        "spread to judge by (more seeds, or a finer metric); seeds for 80%: an estimate of the seeds at which a paired "
        "t test at alpha 0.05 would detect the Δ seen with 80 % power, from the seeds' spread so far (docs/extend.md)."
    ) + (
        " § pruned by racing: stopped as worse than a baseline by more than the margin (sequential test, "
        "docs/racing.md); its statistics are those at the stop."
        if any(v.pruned for v in report.variants)
        else ""
    )


def markdown(report: Report, baseline: str | None = None) -> str:
    def esc(c: Cell) -> str:
        text = "".join("\\" + ch if ch in "\\|*_`[]<>" else ch for ch in c.text)
        return f"**{text}**" if c.bold else text

    header, rows = table(report, baseline)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for cells in rows:
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + note(report) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
                 "†": r"$^\dagger$", "‡": r"$^\ddagger$", "–": "--", "§": r"$^\S$"}  # fmt: skip


def latex_escape(s: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in s)


def latex(report: Report, baseline: str | None = None) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``)."""
    header, rows = table(report, baseline)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    n_variants = sum(1 for v in report.variants if v.role == "variant")
    for i, cells in enumerate(rows):
        if i == n_variants and 0 < i < len(rows):
            out.append(r"\midrule")
        out.append(
            " & ".join(rf"\textbf{{{latex_escape(c.text)}}}" if c.bold else latex_escape(c.text) for c in cells)
            + r" \\"
        )
    out += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{" + latex_escape(note(report)) + "}",
        r"\end{table}",
    ]
    return "\n".join(out) + "\n"


def csv(report: Report, baseline: str | None = None) -> str:
    baseline = report.chosen_baseline(baseline)
    rows = []
    for v in report.variants:
        row: dict[str, Any] = {"variant": v.variant, "role": v.role, "method": v.method, "n": v.n,
                               "excluded": v.excluded, "pruned": v.pruned}  # fmt: skip
        for m in TABLE_METRICS:
            row[f"{m}_mean"] = v.metrics[m].mean
            row[f"{m}_std"] = v.metrics[m].std
        c = report.comparison(v.variant, baseline)
        row.update(
            baseline=baseline,
            delta=None if c is None else c.delta,
            delta_ci_lo=None if c is None or c.ci95 is None else c.ci95[0],
            delta_ci_hi=None if c is None or c.ci95 is None else c.ci95[1],
            p=None if c is None else c.p,
            p_holm=None if c is None else c.p_holm,
            test=None if c is None else c.test,
            seeds_needed=None if c is None else c.seeds_needed,
        )
        rows.append(row)
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False, float_format="%.10g")
    return buf.getvalue()


FORMATS: dict[str, Callable[[Report, str | None], str]] = {"md": markdown, "latex": latex, "csv": csv}
