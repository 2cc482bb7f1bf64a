"""POST /v1/sweeps/{id}/extend with fakes for Ray and MLflow: the union stored, one job for the new trials only."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.submitter import JobState
from service.sync import sync_once
from service.trials import TrialView
from tests.service.fakes import FakeSubmitter, FakeTrials
from tests.service.test_api import SMOKE, _view, make_client, post_yaml


@pytest.fixture
def fakes() -> tuple[FakeSubmitter, FakeTrials]:
    return FakeSubmitter(), FakeTrials()


@pytest.fixture
def client(tmp_path: Path, fakes: tuple[FakeSubmitter, FakeTrials], database_url: str) -> Iterator[TestClient]:
    with make_client(tmp_path, fakes, database_url) as c:
        yield c


RACED = SMOKE + "racing: {baseline: ce, min_seeds: 2}\n"


def finished_sweep(client: TestClient, fakes: Any, spec: str = SMOKE, runs: list[TrialView] | None = None) -> str:
    """A sweep of ``spec`` whose job succeeded, with ``runs`` in MLflow (before the finished sweep's trials are read
    and cached for good)."""
    sid: str = post_yaml(client, spec).json()["id"]
    fakes[1].by_sweep[sid] = runs or []
    fakes[0].jobs[sid] = JobState("SUCCEEDED")
    sync_once(client.app.state.services)  # type: ignore[attr-defined]
    assert client.get(f"/v1/sweeps/{sid}").json()["status"] == "SUCCEEDED"
    return sid


def test_more_seeds_start_one_job_for_the_new_trials_only(client: TestClient, fakes: Any) -> None:
    sid = finished_sweep(client, fakes)
    dry = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json={"seeds": [2, 3]})
    assert dry.status_code == 200 and dry.json()["dry_run"] and dry.json()["new_trials"] == 4
    assert len(fakes[0].submitted) == 1  # the dry run started nothing
    r = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [2, 3]}, headers={"Idempotency-Key": "e1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["new_trials"] == 4 and {t["seed"] for t in body["trials"]} == {2, 3} and body["extension"] == 1
    assert body["job_id"] == f"{sid}-x1" and body["sweep"]["status"] == "SUBMITTED"
    assert fakes[0].submitted[-1] == (f"{sid}-x1", sid, False)
    spec_json, extension = fakes[0].specs[f"{sid}-x1"]
    assert extension == 1 and json.loads(spec_json)["seeds"] == [0, 1, 2, 3]
    got = client.get(f"/v1/sweeps/{sid}").json()
    assert got["spec"]["seeds"] == [0, 1, 2, 3] and got["trials"] == 8 and got["finished_at"] is None
    # the same key and body: the same extension, no second job (also while it runs)
    again = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [2, 3]}, headers={"Idempotency-Key": "e1"})
    assert again.status_code == 200 and again.json()["extension"] == 1 and len(fakes[0].submitted) == 2
    busy = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [4]})
    assert busy.status_code == 409 and "wait or cancel" in busy.json()["detail"]
    other = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [5]}, headers={"Idempotency-Key": "e1"})
    assert other.status_code == 409 and "another extension" in other.json()["detail"]


def test_cancel_and_resume_work_on_the_extension(client: TestClient, fakes: Any) -> None:
    sid = finished_sweep(client, fakes)
    assert client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [2]}).status_code == 201
    assert client.post(f"/v1/sweeps/{sid}/cancel").json()["status"] == "CANCELLED"
    assert fakes[0].stopped == [f"{sid}-x1"]
    r = client.post(f"/v1/sweeps/{sid}/resume")
    assert r.status_code == 200 and r.json()["job_id"] == f"{sid}-x1-r1"
    assert fakes[0].submitted[-1] == (f"{sid}-x1-r1", sid, True) and fakes[0].specs[f"{sid}-x1-r1"][1] == 1
    fakes[0].jobs[f"{sid}-x1-r1"] = JobState("SUCCEEDED")
    sync_once(client.app.state.services)  # type: ignore[attr-defined]
    assert client.get(f"/v1/sweeps/{sid}").json()["status"] == "SUCCEEDED"
    second = client.post(f"/v1/sweeps/{sid}/extend", json={"baselines": ["label_smoothing"]})
    assert second.status_code == 201 and second.json()["job_id"] == f"{sid}-x2" and second.json()["new_trials"] == 3


def test_nothing_new_is_200_and_starts_no_job(client: TestClient, fakes: Any) -> None:
    sid = finished_sweep(client, fakes)
    spec = client.get(f"/v1/sweeps/{sid}").json()["spec"]
    for body in ({"seeds": [0, 1]}, {}, spec):
        r = client.post(f"/v1/sweeps/{sid}/extend", json=body)
        assert r.status_code == 200 and r.json()["new_trials"] == 0 and r.json()["job_id"] is None, r.text
    assert len(fakes[0].submitted) == 1
    assert client.get(f"/v1/sweeps/{sid}").json()["status"] == "SUCCEEDED"


def test_a_changed_base_or_a_bad_body_is_422_naming_the_field(client: TestClient, fakes: Any) -> None:
    sid = finished_sweep(client, fakes)
    spec = client.get(f"/v1/sweeps/{sid}").json()["spec"]
    spec["base"]["optim"]["lr"] = 0.1
    r = client.post(f"/v1/sweeps/{sid}/extend", json=spec)
    assert r.status_code == 422 and any(p.startswith("base:") for p in r.json()["problems"]), r.text
    r = client.post(f"/v1/sweeps/{sid}/extend", json={"variants": {"rskd_l": {"optim.lr": 0.2}}})
    assert r.status_code == 422 and any(p.startswith("variants.rskd_l") for p in r.json()["problems"])
    r = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": ["x"]})
    assert r.status_code == 422
    r = client.post(f"/v1/sweeps/{sid}/extend", content="seeds: [7]", headers={"content-type": "application/yaml"})
    assert r.status_code == 201 and r.json()["new_trials"] == 2
    assert client.post("/v1/sweeps/sw-nope/extend", json={"seeds": [3]}).status_code == 404
    assert len(fakes[0].submitted) == 2


def test_the_openapi_document_describes_the_extension(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/sweeps/{sweep_id}/extend"]["post"]
    refs = op["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert {r["$ref"] for r in refs} == {"#/components/schemas/ExtendBody", "#/components/schemas/SweepSpec"}
    assert {"ExtendBody", "ExtensionRead", "NewTrial"} <= set(doc["components"]["schemas"])


def test_to_power_adds_the_seeds_the_undecided_comparison_needs(client: TestClient, fakes: Any) -> None:
    """Δ ≈ +0.01 with a paired SD ≈ 0.01 on 2 seeds: the estimate asks for about 10 seeds (8 more per row)."""
    sid = finished_sweep(client, fakes)
    fakes[1].by_sweep[sid] = [_view("rskd_l", "variant", 0, "FINISHED", 0.905), _view("rskd_l", "variant", 1,
                              "FINISHED", 0.915), _view("ce", "baseline", 0, "FINISHED", 0.90),
                              _view("ce", "baseline", 1, "FINISHED", 0.896)]  # fmt: skip
    (comparison,) = client.get(f"/v1/sweeps/{sid}/report").json()["comparisons"]
    needed = comparison["seeds_needed"]
    assert needed is not None and needed > 2
    r = client.post(f"/v1/sweeps/{sid}/extend?to_power=0.8&dry_run=true", json={})
    assert r.status_code == 200, r.text
    assert r.json()["new_trials"] == 2 * (needed - 2)
    assert sorted({t["seed"] for t in r.json()["trials"]}) == list(range(2, needed))


def test_to_power_stays_within_the_trial_limit(tmp_path: Path, fakes: Any, database_url: str) -> None:
    with make_client(tmp_path, fakes, database_url, rskd_max_trials=6) as client:
        sid = finished_sweep(client, fakes)
        fakes[1].by_sweep[sid] = [_view("rskd_l", "variant", 0, "FINISHED", 0.905), _view("rskd_l", "variant", 1,
                                  "FINISHED", 0.915), _view("ce", "baseline", 0, "FINISHED", 0.90),
                                  _view("ce", "baseline", 1, "FINISHED", 0.896)]  # fmt: skip
        r = client.post(f"/v1/sweeps/{sid}/extend?to_power=0.8&dry_run=true", json={})
        assert r.status_code == 200 and r.json()["new_trials"] == 2, r.text  # 3 seeds × 2 rows = the limit


def cli_through(client: TestClient, monkeypatch: pytest.MonkeyPatch, sent: list[Any]) -> io.StringIO:
    """The CLI's HTTP calls answered by the test client (each JSON body kept in ``sent``); its output in the buffer."""
    from rich.console import Console

    from service import cli

    def call(method: str, path: str, **kw: Any) -> Any:
        if "content" in kw:
            sent.append(json.loads(kw["content"]))
        r = client.request(method, path, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    out = io.StringIO()
    monkeypatch.setattr(cli, "_call", call)
    monkeypatch.setattr(cli, "console", Console(file=out, width=200))
    return out


def test_the_cli_extends_through_the_api(client: TestClient, fakes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import cli

    sid = finished_sweep(client, fakes)
    out = cli_through(client, monkeypatch, [])
    cli.extend(sid, seeds="2,3", dry_run=True)
    assert "4 new trials (dry run)" in out.getvalue() and len(fakes[0].submitted) == 1
    cli.extend(sid, seeds="2,3")
    assert f"job {sid}-x1" in out.getvalue() and fakes[0].submitted[-1][0] == f"{sid}-x1"


def test_the_sweep_page_form_extends_with_the_token(tmp_path: Path, fakes: Any, database_url: str) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    with make_client(tmp_path, fakes, database_url, rskd_api_token="s3cret") as c:
        c.headers["Authorization"] = "Bearer s3cret"
        sid = finished_sweep(c, fakes)
        page = c.get(f"/dashboards/sweeps/{sid}").text
        assert f'action="/dashboards/sweeps/{sid}/extend"' in page
        del c.headers["Authorization"]
        anon = c.post(f"/dashboards/sweeps/{sid}/extend", content="seeds=2", headers=form, follow_redirects=False)
        assert anon.status_code == 303 and anon.headers["location"] == "/dashboards/login"
        assert len(fakes[0].submitted) == 1
        c.post("/dashboards/login", content="token=s3cret", headers=form)
        bad = c.post(f"/dashboards/sweeps/{sid}/extend", content="seeds=x", headers=form)
        assert bad.status_code == 422 and "whole numbers" in bad.text
        ok = c.post(f"/dashboards/sweeps/{sid}/extend", content="seeds=2%2C3", headers=form, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == f"/dashboards/sweeps/{sid}"
        assert fakes[0].submitted[-1][0] == f"{sid}-x1"
        busy = c.post(f"/dashboards/sweeps/{sid}/extend", content="seeds=4", headers=form)
        assert busy.status_code == 409 and "wait or cancel" in busy.text
        assert f'action="/dashboards/sweeps/{sid}/extend"' not in c.get(f"/dashboards/sweeps/{sid}").text


def test_the_job_entrypoint_names_the_extension() -> None:
    import shlex

    from service.submitter import entrypoint

    cmd = shlex.split(entrypoint("sw-1", '{"name": "x"}', True, 2))
    assert cmd[:3] == ["python", "-m", "worker.sweep"] and cmd[3] == "resume" and cmd[-2:] == ["--extension", "2"]
    assert "--extension" not in entrypoint("sw-1", "{}", False)


def pruned_sweep(client: TestClient, fakes: Any) -> str:
    """The raced smoke sweep, finished, after racing pruned rskd_l at seed 1 (its run KILLED and tagged pruned)."""
    runs = [_view("rskd_l", "variant", 0, "FINISHED", 0.50),
            _view("rskd_l", "variant", 1, "KILLED", None).model_copy(update={"pruned": True}),
            _view("ce", "baseline", 0, "FINISHED", 0.90), _view("ce", "baseline", 1, "FINISHED", 0.91)]  # fmt: skip
    return finished_sweep(client, fakes, RACED, runs)


def test_a_pruned_variant_gets_no_new_trials_and_the_dry_run_lists_them(client: TestClient, fakes: Any) -> None:
    sid = pruned_sweep(client, fakes)
    dry = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json={"seeds": [2, 3]})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["new_trials"] == 2 and {(t["variant"], t["seed"]) for t in body["trials"]} == {("ce", 2), ("ce", 3)}
    assert [(t["variant"], t["seed"]) for t in body["kept_pruned"]] == [("rskd_l", 2), ("rskd_l", 3)]
    assert body["reopened"] == [] and len(fakes[0].submitted) == 1
    r = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [2, 3]}, headers={"Idempotency-Key": "p1"})
    assert r.status_code == 201 and r.json()["new_trials"] == 2 and len(r.json()["kept_pruned"]) == 2, r.text
    assert fakes[0].reopened[f"{sid}-x1"] == []  # the job keeps the decision: no --reopen
    got = client.get(f"/v1/sweeps/{sid}").json()
    assert got["spec"]["seeds"] == [0, 1, 2, 3] and got["trials"] == 8  # the kept trials get a run, KILLED and pruned
    again = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [2, 3]}, headers={"Idempotency-Key": "p1"})
    assert again.status_code == 200 and again.json()["kept_pruned"] == r.json()["kept_pruned"]


def test_reopen_gives_a_pruned_variant_its_new_trials_in_the_job_and_its_resume(client: TestClient, fakes: Any) -> None:
    sid = pruned_sweep(client, fakes)
    body = {"seeds": [2], "reopen": ["rskd_l"]}
    dry = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json=body).json()
    assert dry["new_trials"] == 2 and dry["kept_pruned"] == [] and dry["reopened"] == ["rskd_l"]
    r = client.post(f"/v1/sweeps/{sid}/extend", json=body, headers={"Idempotency-Key": "p2"})
    assert r.status_code == 201 and {t["variant"] for t in r.json()["trials"]} == {"rskd_l", "ce"}, r.text
    assert fakes[0].reopened[f"{sid}-x1"] == ["rskd_l"]
    # the same union without reopen is another request: the key refuses it
    other = client.post(f"/v1/sweeps/{sid}/extend", json={"seeds": [2]}, headers={"Idempotency-Key": "p2"})
    assert other.status_code == 409
    assert client.post(f"/v1/sweeps/{sid}/cancel").status_code == 200
    assert client.post(f"/v1/sweeps/{sid}/resume").json()["job_id"] == f"{sid}-x1-r1"
    assert fakes[0].reopened[f"{sid}-x1-r1"] == ["rskd_l"]


def test_reopening_what_is_not_a_pruned_variant_is_422_naming_it(client: TestClient, fakes: Any) -> None:
    sid = pruned_sweep(client, fakes)
    r = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json={"seeds": [2], "reopen": ["ce", "nope"]})
    assert r.status_code == 422 and "reopen" in r.json()["detail"], r.text
    assert r.json()["problems"] == ["reopen.ce: not a pruned variant of the sweep (pruned: rskd_l)",
                                    "reopen.nope: not a pruned variant of the sweep (pruned: rskd_l)"]  # fmt: skip
    plain = finished_sweep(client, fakes)
    r = client.post(f"/v1/sweeps/{plain}/extend", json={"seeds": [2], "reopen": ["rskd_l"]})
    assert r.status_code == 422 and r.json()["problems"] == [
        "reopen.rskd_l: not a pruned variant of the sweep (pruned: none)"
    ]
    assert len(fakes[0].submitted) == 2  # the two sweeps' own jobs only


def test_the_cli_reopens_and_says_what_it_left_out(
    client: TestClient, fakes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import cli

    sid = pruned_sweep(client, fakes)
    sent: list[Any] = []
    out = cli_through(client, monkeypatch, sent)
    cli.extend(sid, seeds="2,3", dry_run=True)
    assert "2 new trials (dry run)" in out.getvalue()
    assert (
        "left out, their variant was pruned by racing (--reopen VARIANT runs them): rskd_l seed 2, rskd_l seed 3"
        in (out.getvalue())
    )
    cli.extend(sid, seeds="2,3", reopen=["rskd_l"])
    assert sent[-1] == {"seeds": [2, 3], "reopen": ["rskd_l"]} and fakes[0].reopened[f"{sid}-x1"] == ["rskd_l"]
    from typer.testing import CliRunner

    args = ["sweeps", "extend", sid, "--seeds", "4", "--reopen", "rskd_l", "--reopen", "x", "--dry-run"]
    monkeypatch.setattr(cli, "_call", lambda method, path, **kw: sent.append(json.loads(kw["content"])) or {
        "new_trials": 0, "dry_run": True, "trials": [], "job_id": None})  # fmt: skip
    assert CliRunner().invoke(cli.app, args).exit_code == 0 and sent[-1] == {"seeds": [4], "reopen": ["rskd_l", "x"]}


def test_the_entrypoint_passes_reopen_quoted() -> None:
    import shlex

    from service.submitter import entrypoint

    cmd = shlex.split(entrypoint("sw-1", "{}", False, 1, ["rskd_l", 'b[x="a b"]']))
    assert cmd[-6:] == ["--extension", "1", "--reopen", "rskd_l", "--reopen", 'b[x="a b"]']


def test_a_sweep_without_racing_extends_without_asking_mlflow(client: TestClient, fakes: Any) -> None:
    sid, raced = finished_sweep(client, fakes), finished_sweep(client, fakes, RACED)

    def down(*_: Any) -> Any:
        raise ConnectionError("MLflow down")

    fakes[1].trials = down  # nothing was pruned in a sweep without racing: MLflow is not needed
    r = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json={"seeds": [2]})
    assert r.status_code == 200 and r.json()["new_trials"] == 2 and r.json()["kept_pruned"] == [], r.text
    assert client.post(f"/v1/sweeps/{raced}/extend?dry_run=true", json={"seeds": [2]}).status_code == 503


FORM = {"content-type": "application/x-www-form-urlencoded"}


def stored_extension(client: TestClient, sid: str) -> tuple[list[Any], dict[str, Any]]:
    """The sweep's one stored extension: its new trials and what it did with pruned variants."""
    from sqlalchemy import select

    from service.deps import run_in_db
    from service.models import ExtensionRow

    services = client.app.state.services  # type: ignore[attr-defined]
    ext = run_in_db(
        services, lambda repo: repo.s.scalars(select(ExtensionRow).where(ExtensionRow.sweep_id == sid)).one()
    )
    return json.loads(ext.trials_json), json.loads(ext.pruned_json or "{}")


def test_the_sweep_page_offers_to_reopen_each_pruned_variant_only(client: TestClient, fakes: Any) -> None:
    sid, plain = pruned_sweep(client, fakes), finished_sweep(client, fakes)
    page = client.get(f"/dashboards/sweeps/{sid}").text
    assert '<input type="checkbox" name="reopen" value="rskd_l"> reopen rskd_l (pruned by racing)' in page
    assert page.count('name="reopen"') == 1 and 'value="ce"' not in page  # the baseline ran on: not offered
    assert 'name="reopen"' not in client.get(f"/dashboards/sweeps/{plain}").text


def test_the_sweep_page_form_reopens_a_pruned_variant(client: TestClient, fakes: Any) -> None:
    sid = pruned_sweep(client, fakes)
    r = client.post(f"/dashboards/sweeps/{sid}/extend", content="seeds=2&reopen=rskd_l", headers=FORM,
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/dashboards/sweeps/{sid}", r.text
    assert fakes[0].reopened[f"{sid}-x1"] == ["rskd_l"]
    trials, pruned = stored_extension(client, sid)
    assert pruned == {"reopen": ["rskd_l"], "kept_pruned": []}
    assert {(t["variant"], t["seed"]) for t in trials} == {("rskd_l", 2), ("ce", 2)}


def test_the_sweep_page_form_shows_a_refused_reopen_naming_it(client: TestClient, fakes: Any) -> None:
    sid = pruned_sweep(client, fakes)
    r = client.post(f"/dashboards/sweeps/{sid}/extend", content="seeds=2&reopen=ce&reopen=nope", headers=FORM)
    assert r.status_code == 422 and "<h1>Not extended</h1>" in r.text and "reopen names a variant" in r.text
    for name in ("ce", "nope"):
        assert f"<li>reopen.{name}: not a pruned variant of the sweep (pruned: rskd_l)</li>" in r.text
    too_many = "&".join(f"reopen=v{i}" for i in range(101))
    r = client.post(f"/dashboards/sweeps/{sid}/extend", content=f"seeds=2&{too_many}", headers=FORM)
    assert r.status_code == 422 and "reopen: List should have at most 100 items" in r.text, r.text
    assert len(fakes[0].submitted) == 1 and f"{sid}-x1" not in fakes[0].reopened  # nothing extended


def reopened_sweep(client: TestClient, fakes: Any, pruned_again: bool) -> str:
    """The raced smoke sweep after an extension reopened rskd_l (its pruned seed-1 run tagged reopened) and ran its
    seed 2 — which, ``pruned_again``, racing in that extension stopped (pruned, not reopened)."""
    seed2 = _view("rskd_l", "variant", 2, "KILLED", None).model_copy(update={"pruned": True}) if pruned_again else (
        _view("rskd_l", "variant", 2, "FINISHED", 0.6))  # fmt: skip
    runs = [_view("rskd_l", "variant", 0, "FINISHED", 0.50), seed2,
            _view("rskd_l", "variant", 1, "KILLED", None).model_copy(update={"pruned": True, "reopened": True}),
            *(_view("ce", "baseline", s, "FINISHED", 0.9) for s in range(3))]  # fmt: skip
    return finished_sweep(client, fakes, RACED, runs)


def test_a_reopen_lasts_until_racing_prunes_the_variant_again(client: TestClient, fakes: Any) -> None:
    sid = reopened_sweep(client, fakes, pruned_again=False)
    dry = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json={"seeds": [3]}).json()
    assert dry["new_trials"] == 2 and dry["kept_pruned"] == []  # no need to reopen it again
    r = client.post(f"/v1/sweeps/{sid}/extend?dry_run=true", json={"seeds": [3], "reopen": ["rskd_l"]})
    assert r.status_code == 422 and r.json()["problems"] == [
        "reopen.rskd_l: not a pruned variant of the sweep (pruned: none)"
    ]
    assert 'name="reopen"' not in client.get(f"/dashboards/sweeps/{sid}").text
    assert client.get(f"/v1/sweeps/{sid}").json()["trials_by_state"]["PRUNED"] == 1  # its old run was pruned then
    row = next(v for v in client.get(f"/v1/sweeps/{sid}/report").json()["variants"] if v["variant"] == "rskd_l")
    assert not row["pruned"] and row["n"] == 2

    again = reopened_sweep(client, fakes, pruned_again=True)
    dry = client.post(f"/v1/sweeps/{again}/extend?dry_run=true", json={"seeds": [3]}).json()
    assert [(t["variant"], t["seed"]) for t in dry["kept_pruned"]] == [("rskd_l", 3)]
    assert 'value="rskd_l"> reopen rskd_l' in client.get(f"/dashboards/sweeps/{again}").text
    row = next(v for v in client.get(f"/v1/sweeps/{again}/report").json()["variants"] if v["variant"] == "rskd_l")
    assert row["pruned"] and row["n"] == 1
