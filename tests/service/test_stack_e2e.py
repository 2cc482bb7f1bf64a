"""The service through the real parts: a Ray head started with ``ray start``, a real ``mlflow server``, the API on
real uvicorn, sweeps submitted over HTTP as Ray Jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.procs import free_port, processes_matching, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMOKE = yaml.safe_load((ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text())

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    api_port: int
    mlflow_url: str
    ray_url: str
    api: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_api(self) -> None:
        log = (self.home / "api.log").open("ab")
        self.api = subprocess.Popen(
            [str(BIN / "uvicorn"), "service.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.api_port)],
            env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: httpx.get(f"{self.url}/healthz").status_code == 200, 60, "the API")

    def kill_api(self) -> None:
        assert self.api is not None
        os.killpg(self.api.pid, signal.SIGKILL)
        self.api.wait(timeout=30)
        self.api = None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("stack")
    mlflow_port, dash_port, gcs_port, api_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "RSKD_"))}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",  # the jobs' `python` is the venv's
        RAY_DISABLE_USAGE_STATS="1",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        RSKD_HOME=str(home),
        RAY_ADDRESS=f"http://127.0.0.1:{dash_port}",
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
        RSKD_SYNC_INTERVAL_S="1",
        RSKD_JOB_STOP_TIMEOUT_S="60",
    )
    mlflow = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
         "--port", str(mlflow_port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=(home / "mlflow.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    ray_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    subprocess.run(
        [str(BIN / "ray"), "start", "--head", f"--port={gcs_port}", "--num-cpus=2", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}", "--disable-usage-stats"],
        env=ray_env, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    if (Path.home() / ".ray" / "auth_token").exists():  # Ray turned token auth on for this head
        env["RAY_AUTH_MODE"] = "token"
    s = Stack(home, env, api_port, env["MLFLOW_TRACKING_URI"], env["RAY_ADDRESS"])
    try:
        wait_for(lambda: httpx.get(f"{s.mlflow_url}/health").status_code == 200, 90, "MLflow")
        s.start_api()
        wait_for(lambda: httpx.get(f"{s.url}/readyz").status_code == 200, 90, "readiness")
        yield s
    finally:
        if s.api is not None:
            s.kill_api()
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=ray_env, capture_output=True, timeout=120)
        os.killpg(mlflow.pid, signal.SIGTERM)
        mlflow.wait(timeout=60)


def submit(stack: Stack, spec: dict[str, Any]) -> str:
    r = httpx.post(f"{stack.url}/v1/sweeps", json=spec, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def status_of(stack: Stack, sid: str) -> str:
    return str(httpx.get(f"{stack.url}/v1/sweeps/{sid}", timeout=30).json()["status"])


def two_trials(**changes: Any) -> dict[str, Any]:
    spec = {**SMOKE, "name": f"e2e-{time.monotonic_ns()}", "seeds": [0], **changes}
    return spec


def test_readyz_names_every_dependency(stack: Stack) -> None:
    r = httpx.get(f"{stack.url}/readyz")
    assert r.json() == {"ready": True, "database": "ok", "ray": "ok", "mlflow": "ok"}


def test_a_two_trial_sweep_runs_to_succeeded_over_http(stack: Stack) -> None:
    sid = submit(stack, two_trials())
    wait_for(lambda: status_of(stack, sid) in ("SUCCEEDED", "FAILED"), 300, "the sweep to end")
    detail = httpx.get(f"{stack.url}/v1/sweeps/{sid}").json()
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["trials_by_state"] == {"FINISHED": 2} and detail["best_objective"] > 0.3
    trials = httpx.get(f"{stack.url}/v1/sweeps/{sid}/trials").json()
    assert {t["variant"] for t in trials} == {"rskd_l", "ce"} and all(t["epochs_done"] == 3 for t in trials)
    report = httpx.get(f"{stack.url}/v1/sweeps/{sid}/report").json()
    assert {v["variant"]: v["n"] for v in report["variants"]} == {"rskd_l": 1, "ce": 1}


def test_cancel_stops_the_job_and_kills_the_runs(stack: Stack) -> None:
    spec = two_trials(seeds=[0, 1, 2], max_concurrent_trials=1)
    spec["base"] = {**spec["base"], "optim": {**spec["base"]["optim"], "epochs": 30}}
    sid = submit(stack, spec)
    client = MlflowClient(stack.mlflow_url)

    def running() -> bool:
        return httpx.get(f"{stack.url}/v1/sweeps/{sid}").json()["trials_by_state"].get("RUNNING", 0) > 0

    wait_for(running, 240, "a running trial")
    r = httpx.post(f"{stack.url}/v1/sweeps/{sid}/cancel", timeout=60)
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"

    last: list[list[str]] = []

    def all_closed() -> bool:
        exps = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(exps, f"tags.`rskd.sweep_id` = '{sid}'")
        last.append([run.info.status for run in runs])
        return bool(runs) and all(run.info.status in ("FINISHED", "KILLED") for run in runs)

    try:
        wait_for(all_closed, 150, "every run of the cancelled sweep to be closed")
    except TimeoutError:
        raise AssertionError(
            f"run states: {last[-1:]}; api log: {(stack.home / 'api.log').read_text()[-2000:]}"
        ) from None

    def job_stopped() -> bool:  # asked with Ray's own CLI, in the stack's environment (auth mode included)
        out = subprocess.run(
            [str(BIN / "ray"), "job", "status", sid, "--address", stack.ray_url],
            env=stack.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        seen.append(out.stdout[-500:] + out.stderr[-500:])
        return "was stopped" in out.stdout + out.stderr or "STOPPED" in out.stdout + out.stderr

    seen: list[str] = []
    try:
        wait_for(job_stopped, 90, "the Ray job to be STOPPED")
    except TimeoutError:
        raise AssertionError(f"ray job status said: {seen[-1:]}") from None
    assert status_of(stack, sid) == "CANCELLED"


def test_the_api_killed_and_restarted_mid_sweep_keeps_tracking(stack: Stack) -> None:
    spec = two_trials(seeds=[0, 1], max_concurrent_trials=1)
    sid = submit(stack, spec)
    wait_for(lambda: status_of(stack, sid) == "RUNNING", 120, "the sweep to run")
    stack.kill_api()  # SIGKILL: no shutdown hooks
    time.sleep(2)
    stack.start_api()
    wait_for(lambda: status_of(stack, sid) in ("SUCCEEDED", "FAILED"), 300, "the sweep to end")
    assert status_of(stack, sid) == "SUCCEEDED"
    detail = httpx.get(f"{stack.url}/v1/sweeps/{sid}").json()
    assert detail["trials_by_state"] == {"FINISHED": 4}
    assert len(httpx.get(f"{stack.url}/v1/sweeps/{sid}/report").json()["variants"]) == 2


def test_report_equals_a_recomputation_from_mlflow_and_the_pages_render(stack: Stack, tmp_path: Path) -> None:
    """A finished 9-trial digits sweep (RSKD-L against two baselines, 3 seeds): every number of the report is
    recomputed here from MLflow's raw per-epoch metrics with numpy/scipy; then both pages in headless Chromium."""
    import numpy as np
    from scipy import stats as st

    from tests.browser import artifacts, dump_dom, screenshot

    spec = two_trials(seeds=[0, 1, 2], baselines=["ce", "label_smoothing"])
    spec["base"] = {**spec["base"], "optim": {**spec["base"]["optim"], "epochs": 2}}
    sid = submit(stack, spec)
    wait_for(lambda: status_of(stack, sid) in ("SUCCEEDED", "FAILED"), 400, "the sweep to end")
    assert status_of(stack, sid) == "SUCCEEDED"
    report = httpx.get(f"{stack.url}/v1/sweeps/{sid}/report", timeout=60).json()

    # the recomputation: the last point of each trial's test/top1 history, grouped by variant
    client = MlflowClient(stack.mlflow_url)
    exp = client.get_experiment_by_name(spec["name"])
    runs = client.search_runs([exp.experiment_id], f"tags.`rskd.sweep_id` = '{sid}' and tags.`rskd.kind` = 'trial'")
    values: dict[str, dict[int, float]] = {}
    for run in runs:
        assert run.info.status == "FINISHED"
        history = sorted(client.get_metric_history(run.info.run_id, "test/top1"), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]  # step = epoch, counted from 1
        values.setdefault(run.data.tags["rskd.variant"], {})[int(run.data.tags["rskd.seed"])] = history[-1].value
    assert set(values) == {"rskd_l", "ce", "label_smoothing"} and report["trials"] == 9 and report["excluded"] == 0
    for v in report["variants"]:
        xs = np.array(list(values[v["variant"]].values()))
        assert v["n"] == 3 and not v["low_n"] and v["mean"] == pytest.approx(xs.mean(), rel=1e-12)
        assert v["std"] == pytest.approx(xs.std(ddof=1), rel=1e-9, abs=1e-12)
        if xs.std() > 0:
            assert v["ci95"] == pytest.approx(st.t.interval(0.95, 2, loc=xs.mean(), scale=st.sem(xs)), rel=1e-9)
    ps = []
    for c in report["comparisons"]:
        a, b = values[c["variant"]], values[c["baseline"]]
        diffs = np.array([a[s] - b[s] for s in sorted(a)])
        assert c["test"] == "paired_t" and c["delta"] == pytest.approx(diffs.mean(), rel=1e-9, abs=1e-12)
        if c["no_spread"]:  # the same difference on every seed (up to float noise): a degenerate t test
            assert diffs.std() <= 1e-12 * max(1.0, abs(diffs.mean())) and c["p"] in (0.0, 1.0)
        else:
            ref = st.ttest_rel([a[s] for s in sorted(a)], [b[s] for s in sorted(a)])
            assert c["p"] == pytest.approx(ref.pvalue, rel=1e-9)
            assert c["ci95"] == pytest.approx(list(ref.confidence_interval(0.95)), rel=1e-9)
        ps.append(c["p"])
    if all(p is not None for p in ps):
        lo, hi = sorted(ps)
        assert sorted(c["p_holm"] for c in report["comparisons"]) == pytest.approx(
            [min(1, 2 * lo), max(min(1, 2 * lo), hi)]
        )

    # the driver logged the tables and plots on the parent run
    (parent,) = client.search_runs(
        [exp.experiment_id], f"tags.`rskd.sweep_id` = '{sid}' and tags.`rskd.kind` = 'sweep'"
    )
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/report.tex", "report/report.csv", "report/report.json"} <= logged
    assert {f.path for f in client.list_artifacts(parent.info.run_id, "report/plots")} >= {
        "report/plots/curves.png", "report/plots/deltas.png"}  # fmt: skip

    # the pages, in a real browser
    profile = tmp_path / "chromium"
    page = f"{stack.url}/dashboards/sweeps/{sid}"
    dom = dump_dom(page, profile)
    assert 'id="comparison"' in dom and dom.count("<tr") >= 3 + 1 + 9 + 1
    assert 'data-plots-total="2"' in dom and 'data-plots-loaded="2"' in dom, dom[:3000]
    assert "label_smoothing" in dom and f"{stack.mlflow_url}/#/experiments/{exp.experiment_id}/runs/" in dom
    index = dump_dom(f"{stack.url}/dashboards", profile)
    assert sid in index and "SUCCEEDED" in index
    screenshot(page, artifacts() / "dashboard_sweep.png", profile)
    screenshot(f"{stack.url}/dashboards", artifacts() / "dashboard_index.png", profile, size="1400,900")


def test_a_killed_driver_fails_the_sweep_and_resume_finishes_it(stack: Stack) -> None:
    """SIGKILL of the sweep's Ray Job driver: the sweep turns FAILED with Ray's reason, its unfinished runs are
    closed; POST /resume finishes it without re-running the trials that had finished."""
    spec = two_trials(seeds=[0, 1], baselines=[], max_concurrent_trials=1, max_failures=0)
    spec["base"] = {**spec["base"], "optim": {**spec["base"]["optim"], "epochs": 8}}
    sid = submit(stack, spec)
    client = MlflowClient(stack.mlflow_url)

    def one_done_one_running() -> bool:
        states = httpx.get(f"{stack.url}/v1/sweeps/{sid}").json()["trials_by_state"]
        return states.get("FINISHED", 0) >= 1 and states.get("RUNNING", 0) >= 1

    wait_for(one_done_one_running, 300, "a finished and a running trial")
    (done,) = [r for r in runs_of_sweep(client, sid) if r.info.status == "FINISHED"]
    drivers = processes_matching("worker.sweep", sid)
    assert drivers, "the driver process was not found"
    for pid in drivers:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status_of(stack, sid) == "FAILED", 120, "the sweep to show FAILED")
    detail = httpx.get(f"{stack.url}/v1/sweeps/{sid}").json()
    assert detail["message"], detail  # Ray's reason, e.g. the entrypoint's exit code
    wait_for(lambda: all(r.info.status != "RUNNING" for r in runs_of_sweep(client, sid)), 60, "no run left RUNNING")

    r = httpx.post(f"{stack.url}/v1/sweeps/{sid}/resume", timeout=60)
    assert r.status_code == 200, r.text
    wait_for(lambda: status_of(stack, sid) in ("SUCCEEDED", "FAILED"), 300, "the resumed sweep to end")
    assert status_of(stack, sid) == "SUCCEEDED", (stack.home / "api.log").read_text()[-2000:]
    after = {r.info.run_id: r for r in runs_of_sweep(client, sid)}
    assert after[done.info.run_id].info.end_time == done.info.end_time  # not run again
    assert sorted(r.info.status for r in after.values()) == ["FINISHED"] * 2
    for run_id in after:
        steps = sorted(m.step for m in client.get_metric_history(run_id, "test/top1"))
        assert steps == list(range(1, 9)), steps


def runs_of_sweep(client: MlflowClient, sid: str) -> list[Any]:
    exps = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(exps, f"tags.`rskd.sweep_id` = '{sid}' and tags.`rskd.kind` = 'trial'"))
