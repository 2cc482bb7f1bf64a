"""Sweeps end to end through the real parts: ``python -m worker.sweep`` (the Ray Job entrypoint) on a real local
Ray (2 CPUs), tracked in a real MLflow (a temporary SQLite store, and once a real ``mlflow server`` over HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dashboards.layout import Tag
from dashboards.report import Report
from service.app import job_env
from service.settings import Settings
from tests.procs import free_port, processes_matching

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "examples" / "sweeps" / "digits_smoke.yaml"
TRIAL_TAGS = ["rskd.sweep_id", "rskd.trial_id", "rskd.variant", "rskd.role", "rskd.method", "rskd.seed",
              "rskd.config_hash", "rskd.code_version", "mlflow.parentRunId"]  # fmt: skip
EPOCH_METRICS = ["train/loss", "train/ce", "test/top1", "test/top5", "test/nll", "test/ece", "lr",
                 "throughput/samples_per_s"]  # fmt: skip

pytestmark = pytest.mark.slow


def sweep_env(home: Path, tracking_uri: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env.update(RSKD_HOME=str(home), PYTHONUNBUFFERED="1", RAY_DISABLE_USAGE_STATS="1")
    env["MLFLOW_TRACKING_URI"] = tracking_uri or f"sqlite:///{home / 'mlflow.db'}"
    return env


def sweep(*args: str, env: dict[str, str], timeout: int = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.sweep", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def write_spec(path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(SMOKE.read_text())
    for key, value in changes.items():
        data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def runs_of(client: MlflowClient, sweep_id: str, kind: str) -> list[Any]:
    exps = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(exps, f"tags.`rskd.sweep_id` = '{sweep_id}' and tags.`rskd.kind` = '{kind}'"))


def assert_each_epoch_once(client: MlflowClient, run_id: str, epochs: int) -> None:
    for key in EPOCH_METRICS:
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert steps == list(range(1, epochs + 1)), f"{key}: {steps}"


def test_smoke_sweep_runs_every_trial_into_mlflow(tmp_path: Path) -> None:
    env = sweep_env(tmp_path)
    proc = sweep("run", "--spec", str(SMOKE), "--sweep-id", "smoke-1", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FINISHED — 4 finished, 0 failed, 0 killed of 4" in proc.stdout
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (parent,) = runs_of(client, "smoke-1", "sweep")
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"spec.json", "report"}
    children = runs_of(client, "smoke-1", "trial")
    assert len(children) == 4
    assert {(c.data.tags["rskd.variant"], c.data.tags["rskd.seed"]) for c in children} == {
        ("rskd_l", "0"),
        ("rskd_l", "1"),
        ("ce", "0"),
        ("ce", "1"),
    }
    for child in children:
        assert child.info.status == "FINISHED"
        for tag in TRIAL_TAGS:
            assert child.data.tags.get(tag), tag
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["rskd.role"] == ("baseline" if child.data.tags["rskd.method"] == "ce" else "variant")
        assert child.data.params["optim.epochs"] == "3" and child.data.params["data.name"] == "digits"
        assert_each_epoch_once(client, child.info.run_id, 3)
        assert 0 <= child.data.metrics["final/test_top1"] <= 1
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")}
        assert artifacts == {"checkpoints/best.pt", "checkpoints/final.pt"}
    assert list((tmp_path / "artifacts").rglob("best.pt"))  # artifacts under RSKD_HOME, not ./mlruns
    assert not (ROOT / "mlruns").exists()
    report = Report.model_validate_json(
        Path(client.download_artifacts(parent.info.run_id, "report/report.json", str(tmp_path))).read_text()
    )
    rows = {v.variant: v for v in report.variants}
    assert rows["ce"].n == 2 and rows["rskd_l"].n == 2 and rows["ce"].std is not None
    assert report.objective.column == "final_top1" and report.trials == 4 and report.excluded == 0
    ce_finals = [c.data.metrics["final/test_top1"] for c in children if c.data.tags[Tag.METHOD] == "ce"]
    assert rows["ce"].mean == pytest.approx(sum(ce_finals) / 2)
    assert rows["ce"].metrics["final_top1"].mean == pytest.approx(sum(ce_finals) / 2)


def test_a_trial_that_crashes_once_resumes_in_its_own_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "crash.yaml", variants={"crashy": {}}, baselines=[], seeds=[0])
    env = {**sweep_env(tmp_path), "RSKD_FAULT_FAIL_AT_EPOCH": "1"}  # the trial raises once after epoch 2
    proc = sweep("run", "--spec", str(spec), "--sweep-id", "crash-1", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "InjectedFault" in proc.stdout + proc.stderr  # it really crashed
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (child,) = runs_of(client, "crash-1", "trial")  # exactly one run for the trial
    assert child.info.status == "FINISHED"
    assert child.data.tags["rskd.resumed_from_epoch"] == "2"  # continued from its checkpoint, not from scratch
    assert_each_epoch_once(client, child.info.run_id, 3)


def test_an_invalid_spec_is_refused_before_anything_starts(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "bad.yaml", grid={"teacher.rule": ["ema", "none"]}, baselines=["ce", "ps_kd"])
    env = sweep_env(tmp_path / "home")
    proc = sweep("run", "--spec", str(spec), "--sweep-id", "bad-1", env=env, timeout=120)
    assert proc.returncode == 2
    assert (
        'rskd_l[teacher.rule="none"] (seed 0)' in proc.stderr and 'rskd_l[teacher.rule="none"] (seed 1)' in proc.stderr
    )
    assert "2 of 8 trials are invalid" in proc.stderr
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing was tracked, no Ray was started
    assert not (tmp_path / "home" / "storage").exists()


def test_the_api_limits_travel_with_the_job(tmp_path: Path) -> None:
    """The environment the service gives a job (``job_env``) carries its limits into the driver: 600 trials pass
    under RSKD_MAX_TRIALS=800 (the driver's own default is 500), a lower RSKD_MAX_EPOCHS refuses before anything
    starts, and a real job under a non-default limit runs."""
    settings = Settings(rskd_home=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                        rskd_max_trials=800, rskd_max_epochs=3, rskd_mlflow_patience_s=60)  # fmt: skip
    env = {**sweep_env(tmp_path), **job_env(settings)}
    big = write_spec(
        tmp_path / "big.yaml", grid={"method.temperature": [1, 2, 3, 4, 5]}, seeds=list(range(100))
    )  # (5 rskd_l + ce) × 100 seeds
    proc = sweep("validate", "--spec", str(big), env=env, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.strip().splitlines()) == 600
    proc = sweep("validate", "--spec", str(big), env={**env, "RSKD_MAX_TRIALS": "500"}, timeout=200)
    assert proc.returncode == 2 and "over the limit of 500" in proc.stderr

    small = write_spec(tmp_path / "one.yaml", baselines=[], seeds=[0])
    proc = sweep("run", "--spec", str(small), "--sweep-id", "epochs-1", env={**env, "RSKD_MAX_EPOCHS": "2"})
    assert proc.returncode == 2 and "RSKD_MAX_EPOCHS=2" in proc.stderr
    proc = sweep("run", "--spec", str(small), "--sweep-id", "limits-1", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (child,) = runs_of(MlflowClient(env["MLFLOW_TRACKING_URI"]), "limits-1", "trial")
    assert child.info.status == "FINISHED"


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start_mlflow(tmp_path / "server.db", tmp_path / "artifacts", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_sweep_logs_to_a_real_mlflow_server_over_http(tmp_path: Path, mlflow_server: str) -> None:
    spec = write_spec(tmp_path / "one.yaml", baselines=[], seeds=[0])
    env = sweep_env(tmp_path, tracking_uri=mlflow_server)
    proc = sweep("run", "--spec", str(spec), "--sweep-id", "http-1", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    (child,) = runs_of(client, "http-1", "trial")
    assert child.info.status == "FINISHED"
    assert_each_epoch_once(client, child.info.run_id, 3)
    assert {a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")} == {
        "checkpoints/best.pt",
        "checkpoints/final.pt",
    }
    assert list((tmp_path / "artifacts").rglob("best.pt"))  # stored by the server, not by the client


def test_sigterm_ends_the_sweep_cleanly_and_resume_finishes_it(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "long.yaml",
        seeds=[0, 1, 2],
        max_concurrent_trials=1,
        base={**yaml.safe_load(SMOKE.read_text())["base"], "optim": {"epochs": 4, "milestones": [], "batch_size": 64}},
    )
    env = sweep_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.sweep", "run", "--spec", str(spec), "--sweep-id", "term-1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    deadline = time.monotonic() + 300
    finished_before: dict[str, int] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(1)
        try:
            children = runs_of(client, "term-1", "trial")
        except Exception:  # the store may not exist yet
            continue
        done = [c for c in children if c.info.status == "FINISHED"]
        if done and any(c.info.status == "RUNNING" for c in children):
            finished_before = {c.info.run_id: c.info.end_time for c in done}
            proc.send_signal(signal.SIGTERM)
            break
    out, _ = proc.communicate(timeout=120)
    assert finished_before, "never saw a finished and a running trial at once:\n" + out[-3000:]
    assert proc.returncode == 130, out[-3000:]
    children = runs_of(client, "term-1", "trial")
    statuses = {c.info.status for c in children}
    assert statuses <= {"FINISHED", "KILLED"} and "KILLED" in statuses  # nothing left RUNNING or SCHEDULED
    (parent,) = runs_of(client, "term-1", "sweep")
    assert parent.info.status == "KILLED"

    proc2 = sweep("resume", "--sweep-id", "term-1", env=env)  # the spec is found beside Tune's state
    assert proc2.returncode == 0, proc2.stdout[-3000:] + proc2.stderr[-3000:]
    children = runs_of(client, "term-1", "trial")
    assert len(children) == 6 and {c.info.status for c in children} == {"FINISHED"}
    for c in children:
        assert_each_epoch_once(client, c.info.run_id, 4)
        if c.info.run_id in finished_before:  # finished trials were not run again
            assert c.info.end_time == finished_before[c.info.run_id]
    (parent,) = runs_of(client, "term-1", "sweep")
    assert parent.info.status == "FINISHED"


def start_mlflow(db: Path, artifacts: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(artifacts), "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def wait_healthy(url: str, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"MLflow at {url} not healthy in {timeout:.0f} s")


def test_mlflow_down_mid_sweep_training_goes_on_and_every_epoch_arrives(tmp_path: Path) -> None:
    """The MLflow server is stopped after epoch 2 and started again OUTAGE_S later: the trial keeps training, the
    epochs of the outage arrive (stamped with the time they were recorded, inside the outage), each exactly once."""
    outage_s = float(os.environ.get("RSKD_TEST_MLFLOW_OUTAGE_S", "15"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_mlflow(tmp_path / "server.db", tmp_path / "artifacts", port)
    try:
        wait_healthy(url)
        base = yaml.safe_load(SMOKE.read_text())["base"]
        base["optim"] = {**base["optim"], "epochs": 40}
        spec = write_spec(tmp_path / "long.yaml", base=base, baselines=[], seeds=[0])
        env = sweep_env(tmp_path, tracking_uri=url)
        proc = subprocess.Popen([sys.executable, "-m", "worker.sweep", "run", "--spec", str(spec), "--sweep-id",
                                 "outage-1"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip
        client = MlflowClient(url)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            trials = runs_of(client, "outage-1", "trial") if proc.poll() is None else []
            if trials and len(logged := client.get_metric_history(trials[0].info.run_id, "test/top1")) >= 2:
                break
            time.sleep(0.5)
        else:
            proc.kill()
            raise AssertionError(f"no epoch reached MLflow: {proc.stdout.read() if proc.stdout else ''}")
        assert len(logged) < 30, "the trial is too fast for this test: give it more epochs"
        os.killpg(server.pid, signal.SIGKILL)  # the server dies; nothing answers on its port
        server.wait(timeout=30)
        down_at = time.time()
        time.sleep(outage_s)
        server = start_mlflow(tmp_path / "server.db", tmp_path / "artifacts", port)
        wait_healthy(url)
        up_at = time.time()
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, out[-4000:]
        (child,) = runs_of(client, "outage-1", "trial")
        assert child.info.status == "FINISHED"
        assert_each_epoch_once(client, child.info.run_id, 40)
        stamps = [m.timestamp / 1000 for m in client.get_metric_history(child.info.run_id, "test/top1")]
        assert sum(down_at < t < up_at for t in stamps) >= 2, "training did not go on while MLflow was down"
        assert all(r.info.status == "FINISHED" for r in runs_of(client, "outage-1", "sweep"))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def test_a_trial_process_killed_mid_epoch_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """SIGKILL of the process training a trial: Tune restarts it from its last epoch checkpoint (max_failures),
    it continues its own MLflow run, every epoch appears once."""
    base = yaml.safe_load(SMOKE.read_text())["base"]
    base["optim"] = {**base["optim"], "epochs": 24}
    spec = write_spec(tmp_path / "kill.yaml", base=base, baselines=[], seeds=[0], max_failures=2)
    env = sweep_env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "worker.sweep", "run", "--spec", str(spec), "--sweep-id", "kill-1"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    killed = False
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            trials = runs_of(client, "kill-1", "trial")
            if trials and len(client.get_metric_history(trials[0].info.run_id, "test/top1")) >= 3:
                victims = processes_matching("ImplicitFunc")  # Ray's title for a function trainable's process
                assert victims, "no trial process found"
                for pid in victims:
                    os.kill(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.3)
        assert killed, "the trial never reached epoch 3"
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    (child,) = runs_of(client, "kill-1", "trial")
    assert child.info.status == "FINISHED"
    assert int(child.data.tags["rskd.resumed_from_epoch"]) >= 3
    assert_each_epoch_once(client, child.info.run_id, 24)
