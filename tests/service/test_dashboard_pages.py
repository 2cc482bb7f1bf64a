"""The dashboard pages with fakes for Ray and MLflow: content, plots, downloads, token and cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from service.trials import TrialView
from tests.service.fakes import FakeSubmitter, FakeTrials
from tests.service.test_api import SMOKE, make_client, post_yaml


def view(variant: str, role: str, seed: int, final: float) -> TrialView:
    metrics = {"epoch": 3.0, "test/top1": final, "final/test_top1": final, "best/test_top1": final}
    return TrialView(
        trial_id=f"t{variant}{seed}", run_id=f"run{variant}{seed}xyz", experiment_id="7", variant=variant, role=role,
        method="m", seed=seed, status="FINISHED", knobs={}, metrics=metrics, epochs_done=3,
    )  # fmt: skip


def seed_sweep(c: Any, fakes: tuple[FakeSubmitter, FakeTrials]) -> str:
    sid = str(post_yaml(c, SMOKE).json()["id"])
    fakes[1].by_sweep[sid] = [view("rskd_l<b>", "variant", s, 0.9 + s / 100) for s in range(2)] + [
        view("ce", "baseline", s, 0.88 + s / 200) for s in range(2)
    ]
    return sid


def test_pages_show_the_sweeps_the_table_the_plots_and_links(tmp_path: Path, database_url: str) -> None:
    fakes = (FakeSubmitter(), FakeTrials())
    env = {"mlflow_tracking_uri": "http://mlflow.example:5000", "rskd_ray_ui_url": "http://127.0.0.1:8265"}
    with make_client(tmp_path, fakes, database_url, **env) as c:
        sid = seed_sweep(c, fakes)
        index = c.get("/dashboards")
        assert index.status_code == 200 and sid in index.text and "4/4" in index.text
        assert c.get("/", follow_redirects=False).headers["location"] == "/dashboards"
        page = c.get(f"/dashboards/sweeps/{sid}")
        assert page.status_code == 200
        html = page.text
        assert 'id="comparison"' in html and "rskd_l&lt;b&gt;" in html and "<b>rskd" not in html  # escaped label
        assert "http://mlflow.example:5000/#/experiments/7/runs/runrskd_l&lt;b&gt;0xyz" in html
        assert 'href="http://127.0.0.1:8265"' in html and "/dashboards/static/style.css" in html
        assert "cdn" not in html.lower() and "https://" not in html  # offline: nothing from elsewhere
        for name in ("curves", "deltas"):
            png = c.get(f"/dashboards/sweeps/{sid}/plots/{name}.png")
            assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
        assert c.get(f"/dashboards/sweeps/{sid}/plots/heatmap.png").status_code == 404  # no 2-D grid here
        assert c.get("/dashboards/static/style.css").status_code == 200
        assert c.get("/dashboards/static/app.js").status_code == 200
        csv = c.get(f"/dashboards/sweeps/{sid}/report.csv")
        assert csv.headers["content-type"].startswith("text/csv")
        assert list(pd.read_csv(pd.io.common.StringIO(csv.text))["n"]) == [2, 2]
        assert "\\begin{tabular}" in c.get(f"/dashboards/sweeps/{sid}/report.tex").text
        assert c.get(f"/dashboards/sweeps/{sid}/report.exe").status_code in (404, 422)
        assert c.get("/dashboards/sweeps/sw-nope").status_code == 404


def test_with_a_token_pages_need_it_and_login_sets_a_cookie(tmp_path: Path, database_url: str) -> None:
    fakes = (FakeSubmitter(), FakeTrials())
    with make_client(tmp_path, fakes, database_url, rskd_api_token="s3cret") as c:
        headers = {"content-type": "application/yaml", "Authorization": "Bearer s3cret"}
        sid = str(c.post("/v1/sweeps", content=SMOKE, headers=headers).json()["id"])
        for path in ("/dashboards", f"/dashboards/sweeps/{sid}", f"/dashboards/sweeps/{sid}/plots/curves.png"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/dashboards/login"
        assert c.get("/dashboards", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        form = {"content-type": "application/x-www-form-urlencoded"}
        bad = c.post("/dashboards/login", content="token=nope", headers=form)
        assert bad.status_code == 401 and "s3cret" not in bad.text
        ok = c.post("/dashboards/login", content="token=s3cret", headers=form, follow_redirects=False)
        assert ok.status_code == 303 and "httponly" in ok.headers["set-cookie"].lower()
        assert c.get("/dashboards").status_code == 200  # the cookie now travels
        assert c.get("/v1/sweeps").status_code == 401  # the API itself still wants the header
