"""The REST API with fakes for Ray and MLflow (dependency injection through the app factory) and a real SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from service.app import create_app, job_env
from service.settings import Settings
from service.submitter import JobState
from service.sync import sync_once
from service.trials import TrialView
from tests.service.fakes import FakeSubmitter, FakeTrials
from worker.driver import DriverSettings

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text()


@pytest.fixture
def fakes() -> tuple[FakeSubmitter, FakeTrials]:
    return FakeSubmitter(), FakeTrials()


def make_client(tmp_path: Path, fakes: tuple[FakeSubmitter, FakeTrials], db: str, **env: Any) -> TestClient:
    settings = Settings(rskd_home=tmp_path, rskd_database_url=db, **env)
    app = create_app(settings, submitter=fakes[0], trials=fakes[1], sync=False)
    return TestClient(app)


@pytest.fixture
def client(tmp_path: Path, fakes: tuple[FakeSubmitter, FakeTrials], database_url: str) -> Iterator[TestClient]:
    with make_client(tmp_path, fakes, database_url) as c:
        yield c


def post_yaml(client: TestClient, body: str, **headers: str) -> Any:
    return client.post("/v1/sweeps", content=body, headers={"content-type": "application/yaml", **headers})


def test_submit_a_yaml_spec_stores_it_and_submits_one_job(client: TestClient, fakes: Any) -> None:
    r = post_yaml(client, SMOKE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "SUBMITTED" and body["trials"] == 4 and body["id"].startswith("sw-")
    assert fakes[0].submitted == [(body["id"], body["id"], False)]  # one job, submission id = sweep id
    got = client.get(f"/v1/sweeps/{body['id']}").json()
    assert got["name"] == "digits-smoke" and got["spec"]["seeds"] == [0, 1]
    assert got["trials_by_state"] == {"SCHEDULED": 4}


def test_json_body_works_too(client: TestClient) -> None:
    r = client.post("/v1/sweeps", json=yaml.safe_load(SMOKE))
    assert r.status_code == 201, r.text


def test_idempotency_key(client: TestClient, fakes: Any) -> None:
    a = post_yaml(client, SMOKE, **{"Idempotency-Key": "k1"})
    b = post_yaml(client, SMOKE, **{"Idempotency-Key": "k1"})
    assert a.status_code == 201 and b.status_code == 200 and a.json()["id"] == b.json()["id"]
    assert len(fakes[0].submitted) == 1
    other = SMOKE.replace("seeds: [0, 1]", "seeds: [0, 1, 2]")
    c = post_yaml(client, other, **{"Idempotency-Key": "k1"})
    assert c.status_code == 409 and "another spec" in c.json()["detail"]


def test_bad_specs_get_422_with_field_paths_and_store_nothing(client: TestClient, fakes: Any) -> None:
    r = post_yaml(client, SMOKE.replace("baselines: [ce]", "baselines: [ce, nope]"))
    assert r.status_code == 422
    assert any("unknown method 'nope'" in p for p in r.json()["problems"])
    r = post_yaml(client, SMOKE.replace("rskd_l: {}", "rskd_l: {teacher.rule: none}"))
    assert r.status_code == 422
    assert any("rskd_l (seed 0)" in p and "pseudo-teacher" in p for p in r.json()["problems"])
    r = post_yaml(client, "name: x\nbase: {optim: {lr: -1}}\n")
    assert r.status_code == 422 and any("base.optim.lr" in p for p in r.json()["problems"])
    r = post_yaml(client, "seed: !!python/object/apply:os.system ['true']")
    assert r.status_code == 422 and "not valid YAML" in r.text
    assert client.get("/v1/sweeps").json()["total"] == 0 and fakes[0].submitted == []


def test_a_trial_limit_above_500_is_accepted_and_sent_to_the_job(tmp_path: Path, fakes: Any, database_url: str) -> None:
    """RSKD_MAX_TRIALS=800: a 600-trial sweep passes the dry run, and the job's environment carries the limit (and
    the epoch limit and MLflow patience) into the driver's settings, whose own default is 500."""
    spec = yaml.safe_load(SMOKE)
    spec.update(grid={"method.temperature": [1, 2, 3, 4, 5]}, seeds=list(range(100)))  # (5 + ce) × 100 seeds
    with make_client(tmp_path, fakes, database_url, rskd_max_trials=800, rskd_max_epochs=7) as c:
        r = c.post("/v1/sweeps?dry_run=true", json=spec)
        assert r.status_code == 200, r.text
        assert r.json()["trials"] == 600
    settings = Settings(rskd_home=tmp_path, rskd_max_trials=800, rskd_max_epochs=7, rskd_mlflow_patience_s=42)
    driver = DriverSettings.from_env(job_env(settings))
    assert (driver.max_trials, driver.max_epochs, driver.mlflow_patience_s) == (800, 7, 42.0)
    assert driver.tracking_uri == settings.mlflow_tracking_uri and driver.storage_path == settings.storage_path
    assert DriverSettings.from_env({"RSKD_HOME": str(tmp_path)}).max_trials == 500


def test_limits_are_named(tmp_path: Path, fakes: Any, database_url: str) -> None:
    with make_client(tmp_path, fakes, database_url, rskd_max_trials=3, rskd_max_body_bytes=2048) as c:
        r = post_yaml(c, SMOKE)
        assert r.status_code == 422 and "over the limit of 3" in r.json()["detail"]
        r = post_yaml(c, SMOKE + "#" * 3000)
        assert r.status_code == 413 and "limit of 2048 bytes" in r.json()["detail"]


def test_dry_run_validates_without_storing(client: TestClient, fakes: Any) -> None:
    r = client.post("/v1/sweeps?dry_run=true", content=SMOKE, headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and r.json() == {"valid": True, "name": "digits-smoke", "trials": 4}
    assert client.get("/v1/sweeps").json()["total"] == 0 and fakes[0].submitted == []


def test_list_paginates_and_filters(client: TestClient, fakes: Any) -> None:
    ids = [post_yaml(client, SMOKE).json()["id"] for _ in range(5)]
    page = client.get("/v1/sweeps?limit=2&offset=1").json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["items"][0]["id"] == ids[3]
    client.post(f"/v1/sweeps/{ids[0]}/cancel")
    cancelled = client.get("/v1/sweeps?status=CANCELLED").json()
    assert cancelled["total"] == 1 and cancelled["items"][0]["id"] == ids[0]
    assert client.get("/v1/sweeps?status=BOGUS").status_code == 422


def test_cancel_and_resume(client: TestClient, fakes: Any) -> None:
    sid = post_yaml(client, SMOKE).json()["id"]
    r = client.post(f"/v1/sweeps/{sid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED" and fakes[0].stopped == [sid]
    assert client.post(f"/v1/sweeps/{sid}/cancel").status_code == 409
    r = client.post(f"/v1/sweeps/{sid}/resume")
    assert r.status_code == 200 and r.json()["status"] == "SUBMITTED" and r.json()["job_id"] == f"{sid}-r1"
    assert fakes[0].submitted[-1] == (f"{sid}-r1", sid, True)
    assert client.post(f"/v1/sweeps/{sid}/resume").status_code == 409  # running sweeps are not resumed
    assert client.get("/v1/sweeps/sw-nope").status_code == 404


def test_ray_down_keeps_the_sweep_and_says_so(tmp_path: Path, database_url: str) -> None:
    fakes = (FakeSubmitter(fail=True), FakeTrials())
    with make_client(tmp_path, fakes, database_url) as c:
        r = post_yaml(c, SMOKE)
        assert r.status_code == 503 and "is stored but could not be submitted" in r.json()["detail"]
        (row,) = c.get("/v1/sweeps").json()["items"]
        assert row["status"] == "FAILED" and "Ray is down" in row["message"]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ray"].startswith("down") and ready.json()["database"] == "ok"
        fakes[0].fail = False
        assert c.post(f"/v1/sweeps/{row['id']}/resume").status_code == 200  # nothing was lost


def _view(variant: str, role: str, seed: int, status: str, final: float | None) -> TrialView:
    metrics = {"epoch": 3.0, "test/top1": final or 0.5}
    if final is not None:
        metrics.update({"final/test_top1": final, "best/test_top1": final + 0.01})
    return TrialView(
        trial_id=f"t{variant}{seed}", run_id=f"r{variant}{seed}", variant=variant, role=role, method="m", seed=seed,
        status=status, knobs={}, metrics=metrics, epochs_done=int(metrics["epoch"]),
    )  # fmt: skip


def test_trials_detail_and_report_from_the_trial_source(client: TestClient, fakes: Any) -> None:
    sid = post_yaml(client, SMOKE).json()["id"]
    fakes[1].by_sweep[sid] = [
        _view("rskd_l", "variant", 0, "FINISHED", 0.90),
        _view("rskd_l", "variant", 1, "FINISHED", 0.80),
        _view("ce", "baseline", 0, "FINISHED", 0.70),
        _view("ce", "baseline", 1, "RUNNING", None),
    ]
    detail = client.get(f"/v1/sweeps/{sid}").json()
    assert detail["trials_by_state"] == {"FINISHED": 3, "RUNNING": 1}
    assert detail["best_objective"] == pytest.approx(0.91)
    trials = client.get(f"/v1/sweeps/{sid}/trials").json()
    assert len(trials) == 4 and trials[0]["epochs_done"] == 3
    rep = client.get(f"/v1/sweeps/{sid}/report").json()
    assert rep["sweep_id"] == sid and rep["objective"]["metric"] == "test/top1"
    rows = {v["variant"]: v for v in rep["variants"]}
    assert rows["rskd_l"]["n"] == 2 and rows["rskd_l"]["mean"] == pytest.approx(0.85)
    assert rows["rskd_l"]["std"] == pytest.approx(0.0707107, rel=1e-5) and rows["rskd_l"]["low_n"]
    assert rows["ce"]["n"] == 1 and rows["ce"]["excluded"] == 1 and rows["ce"]["std"] is None
    (comp,) = rep["comparisons"]
    assert comp["delta"] == pytest.approx(0.15) and comp["test"] == "none" and comp["p"] is None
    md = client.get(f"/v1/sweeps/{sid}/report", params={"format": "md"})
    assert md.headers["content-type"].startswith("text/markdown") and "| rskd\\_l | 2† | **85.00 ± 7.07**" in md.text
    tex = client.get(f"/v1/sweeps/{sid}/report", params={"format": "latex"}).text
    assert "\\begin{tabular}" in tex and "\\bottomrule" in tex
    assert client.get(f"/v1/sweeps/{sid}/report", params={"format": "csv"}).text.startswith("variant,role,method,n")
    bad = client.get(f"/v1/sweeps/{sid}/report", params={"format": "md", "baseline": "nope"})
    assert bad.status_code == 404 and "choose one of ['ce']" in bad.json()["detail"]  # a missing sub-resource


def test_sync_follows_the_job_and_closes_runs(client: TestClient, fakes: Any) -> None:
    sid = post_yaml(client, SMOKE).json()["id"]
    services = client.app.state.services  # type: ignore[attr-defined]
    fakes[0].jobs[sid] = JobState("RUNNING")
    sync_once(services)
    assert client.get(f"/v1/sweeps/{sid}").json()["status"] == "RUNNING"
    fakes[0].jobs[sid] = JobState("SUCCEEDED", "done")
    sync_once(services)
    got = client.get(f"/v1/sweeps/{sid}").json()
    assert got["status"] == "SUCCEEDED" and got["finished_at"] and fakes[1].killed == [sid]
    sync_once(services)
    assert fakes[1].killed == [sid]  # closed once
    # a cancelled sweep's runs are closed once its job has actually stopped
    cid = post_yaml(client, SMOKE).json()["id"]
    fakes[0].jobs[cid] = JobState("RUNNING")
    client.post(f"/v1/sweeps/{cid}/cancel")
    fakes[0].jobs[cid] = JobState("RUNNING")  # the driver is still stopping
    sync_once(services)
    assert cid not in fakes[1].killed
    fakes[0].jobs[cid] = JobState("CANCELLED", "stopped")
    sync_once(services)
    assert fakes[1].killed == [sid, cid]
    del fakes[0].jobs[sid]
    sid2 = post_yaml(client, SMOKE).json()["id"]
    del fakes[0].jobs[sid2]  # the cluster forgot the job
    sync_once(services)
    assert client.get(f"/v1/sweeps/{sid2}").json()["status"] == "FAILED"


def test_token_auth(tmp_path: Path, fakes: Any, database_url: str) -> None:
    with make_client(tmp_path, fakes, database_url, rskd_api_token="s3cret") as c:
        assert c.get("/v1/sweeps").status_code == 401
        assert c.get("/v1/sweeps", headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.get("/v1/sweeps", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
        assert c.get("/healthz").status_code == 200  # probes stay open
        r = c.post("/v1/sweeps", content=SMOKE, headers={"content-type": "application/yaml"})
        assert r.status_code == 401 and "s3cret" not in r.text


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for p in ["/v1/sweeps", "/v1/sweeps/{sweep_id}", "/v1/sweeps/{sweep_id}/trials", "/v1/sweeps/{sweep_id}/cancel",
              "/v1/sweeps/{sweep_id}/resume", "/v1/sweeps/{sweep_id}/report", "/healthz", "/readyz"]:  # fmt: skip
        assert p in paths, p
    assert client.get("/docs").status_code == 200
    json.dumps(spec)


def test_concurrent_posts_with_one_idempotency_key_store_one_sweep(client: TestClient, fakes: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: post_yaml(client, SMOKE, **{"Idempotency-Key": "race"}).status_code, range(16)))
    assert sorted(set(codes)) in ([200, 201], [201]) and codes.count(201) == 1, codes
    assert client.get("/v1/sweeps").json()["total"] == 1 and len(fakes[0].submitted) == 1
