"""A variant racing pruned: in the report with its statistics at the stop, marked in the tables (§ footnote)."""

from __future__ import annotations

import io

import pandas as pd

from dashboards.collect import SweepData
from dashboards.render import csv, latex, markdown
from dashboards.report import build_report
from tests.dashboards.fixtures import FAILED, sweep

PRUNED = FAILED[0]
REASON = "racing on test/top1: vs ce: n=2 paired seeds, mean difference -0.04, upper bound -0.01 < +0 (-margin)"


def pruned_sweep() -> SweepData:
    data = sweep()
    trials = data.trials.copy()
    trials["pruned"] = False
    trials["pruned_reason"] = None
    stopped = (trials["variant"] == PRUNED) & (trials["seed"] == 2)
    trials.loc[stopped, ["status", "pruned", "pruned_reason"]] = ["KILLED", True, REASON]
    return SweepData(data.sweep_id, trials, data.curves, data.knobs)


def test_a_pruned_variant_keeps_its_statistics_at_the_stop_and_is_marked() -> None:
    rep = build_report(pruned_sweep())
    v = next(x for x in rep.variants if x.variant == PRUNED)
    assert v.pruned and v.pruned_reason == REASON and v.n == 2 and v.excluded == 1 and v.mean is not None
    assert not any(x.pruned for x in rep.variants if x.variant != PRUNED)
    md = markdown(rep, "ce")
    assert f"| {PRUNED.replace('[', chr(92) + '[').replace(']', chr(92) + ']')}§ |" in md and "§ pruned by racing" in md
    assert r"$^\S$" in latex(rep, "ce")
    table = pd.read_csv(io.StringIO(csv(rep, "ce")))
    assert table.set_index("variant")["pruned"].to_dict()[PRUNED]


def test_no_footnote_without_pruning() -> None:
    rep = build_report(sweep())
    assert "§" not in markdown(rep, "ce") and not any(v.pruned for v in rep.variants)
