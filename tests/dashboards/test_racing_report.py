"""A variant racing pruned: in the report with its statistics at the stop, marked in the tables (§ footnote)."""

from __future__ import annotations

import io

import pandas as pd

from dashboards.collect import SweepData
from dashboards.layout import Marks, pruned_variants
from dashboards.render import csv, latex, markdown
from dashboards.report import build_report
from tests.dashboards.fixtures import FAILED, sweep

PRUNED = FAILED[0]
REASON = "racing on test/top1: vs ce: n=2 paired seeds, mean difference -0.04, upper bound -0.01 < +0 (-margin)"


def pruned_sweep(reopened: bool = False) -> SweepData:
    """The fixture sweep after racing stopped ``PRUNED`` at seed 2 (``reopened``: an extension reopened it since)."""
    data = sweep()
    trials = data.trials.copy()
    trials["pruned"] = False
    trials["pruned_reason"] = None
    trials["reopened"] = False
    stopped = (trials["variant"] == PRUNED) & (trials["seed"] == 2)
    trials.loc[stopped, ["status", "pruned", "pruned_reason", "reopened"]] = ["KILLED", True, REASON, reopened]
    return SweepData(data.sweep_id, trials, data.curves, data.knobs)


def test_a_variant_is_pruned_until_an_extension_reopens_it_and_again_once_racing_prunes_it_again() -> None:
    first = Marks("broken", pruned=True, reopened=False, pruned_reason="vs ce: upper bound -0.4")
    finished = Marks("broken", pruned=False, reopened=False, pruned_reason=None)
    ce = Marks("ce", pruned=False, reopened=False, pruned_reason=None)
    assert pruned_variants([ce, finished, first]) == {"broken": "vs ce: upper bound -0.4"}
    reopened = Marks("broken", pruned=True, reopened=True, pruned_reason="vs ce: upper bound -0.4")
    assert pruned_variants([ce, finished, reopened]) == {}
    again = Marks("broken", pruned=True, reopened=False, pruned_reason=None)  # racing in that extension, no reason
    assert pruned_variants([reopened, again, ce]) == {"broken": "pruned by racing"}


def test_marks_of_a_table_row_read_missing_values_as_no_mark() -> None:
    row = {"variant": "v", "pruned": True, "reopened": float("nan"), "pruned_reason": float("nan")}
    assert Marks.of(row) == Marks("v", pruned=True, reopened=False, pruned_reason=None)
    assert Marks.of({"variant": "v"}) == Marks("v", pruned=False, reopened=False, pruned_reason=None)
    trials = pruned_sweep(reopened=True).trials
    stopped = trials[(trials["variant"] == PRUNED) & (trials["seed"] == 2)].iloc[0].to_dict()  # numpy's bools
    assert Marks.of(stopped) == Marks(PRUNED, pruned=True, reopened=True, pruned_reason=REASON)


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


def test_a_reopened_variant_is_a_plain_row_with_all_its_finished_seeds() -> None:
    rep = build_report(pruned_sweep(reopened=True))
    v = next(x for x in rep.variants if x.variant == PRUNED)
    assert not v.pruned and v.pruned_reason is None and v.n == 2 and v.excluded == 1
    assert "§" not in markdown(rep, "ce")
