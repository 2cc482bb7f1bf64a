"""The MLflow link the API gives (and the CLI prints) opens the sweep's runs in the UI's model-training mode; the
MLflow settings that travel with a job reach the driver."""

from __future__ import annotations

from pathlib import Path

from service.app import job_env
from service.settings import Settings
from tests.service.fakes import FakeSubmitter, FakeTrials
from tests.service.test_api import SMOKE, _view, make_client, post_yaml
from worker.driver import DriverSettings


def test_a_sweep_links_its_runs_in_the_mlflow_ui(tmp_path: Path, database_url: str) -> None:
    fakes = (FakeSubmitter(), FakeTrials())
    with make_client(
        tmp_path, fakes, database_url, rskd_mlflow_ui_url="http://mlflow.example:5000/", rskd_trials_ttl_s=0
    ) as client:
        sid = post_yaml(client, SMOKE).json()["id"]
        assert client.get(f"/v1/sweeps/{sid}").json()["mlflow_url"] is None  # no run yet
        fakes[1].by_sweep[sid] = [_view("ce", "baseline", 0, "RUNNING", None).model_copy(update={"experiment_id": "3"})]
        url = client.get(f"/v1/sweeps/{sid}").json()["mlflow_url"]
    assert url == "http://mlflow.example:5000/#/experiments/3/runs?workflowType=machine_learning"


def test_system_metrics_and_the_dashboard_url_travel_with_the_job(tmp_path: Path) -> None:
    settings = Settings(rskd_home=tmp_path, rskd_system_metrics=False, rskd_dashboard_url="http://rskd.example:8000")
    driver = DriverSettings.from_env({**job_env(settings), "RSKD_HOME": str(tmp_path)})
    assert driver.system_metrics is False and driver.dashboard_url == "http://rskd.example:8000"
    assert DriverSettings.from_env(job_env(Settings(rskd_home=tmp_path)) | {"RSKD_HOME": str(tmp_path)}).system_metrics
