"""``rskd report`` (and the end of ``rskd submit --follow``): a table on a terminal, the Markdown when piped."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from dashboards.render import markdown, table
from dashboards.report import build_report
from service import cli
from tests.dashboards.fixtures import sweep

REPORT = build_report(sweep())
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fake_api(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any] | None]:
    """The service's report route: JSON by default, the rendered table for ``format``; records each call's params."""
    calls: list[dict[str, Any] | None] = []

    def call(method: str, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        assert (method, path) == ("GET", "/v1/sweeps/sw-test/report")
        calls.append(params)
        fmt = (params or {}).get("format", "json")
        return REPORT.model_dump(mode="json") if fmt == "json" else markdown(REPORT, (params or {}).get("baseline"))

    monkeypatch.setattr(cli, "_call", call)
    return calls


def test_a_terminal_gets_a_table_without_markdown_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_api(monkeypatch)
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, force_terminal=True, width=240, color_system="standard"))
    cli.report("sw-test")
    text = out.getvalue()
    plain = ANSI.sub("", text)
    assert calls == [None]  # the report's JSON, rendered here
    assert 'rskd[a=1,b="x"]' in plain and "label_smoothing" in plain  # names as they are: no \\_, \\[, no markup
    assert not re.search(r"\\[_\[\]|*]", plain) and "|:---" not in plain and "**" not in plain
    assert "┃" in plain or "│" in plain  # a drawn table
    assert "p (Holm)" in plain and "[95% CI]" in plain and "† fewer than 3 seeds" in plain
    header, rows = table(REPORT)
    bold = [c.text for cells in rows for c in cells if c.bold]
    assert bold and all(f"\x1b[1m{b}" in text for b in bold)  # the best of each column, bold
    delta = next(c.text for cells in rows for c in cells[len(header) - 3 : len(header) - 2] if "[" in c.text)
    assert delta in plain  # Δ with its CI
    assert "seeds for 80%" in plain  # beside it, the seeds the comparison needs (an estimate)


def test_an_unknown_baseline_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_api(monkeypatch)
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, force_terminal=True, width=240))
    with pytest.raises(cli.typer.Exit):
        cli.report("sw-test", baseline="nope")
    assert "no baseline 'nope'" in ANSI.sub("", out.getvalue())


def test_piped_output_and_format_md_stay_markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_api(monkeypatch)
    monkeypatch.setattr(cli, "console", Console())  # writes to whatever stdout is: the runner's pipe
    for args in (["report", "sw-test"], ["report", "sw-test", "--format", "md"]):
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 0, result.output
        assert result.output == markdown(REPORT) and "rskd\\[a=1" in result.output
    assert calls == [{"format": "md"}, {"format": "md"}]
