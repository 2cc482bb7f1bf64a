"""The trainable never runs a trial again once its MLflow run is FINISHED (a driver killed between a trial's end and
Tune's next state save restores that trial as unfinished)."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from worker.spec import expand, parse_spec
from worker.trainable import SweepContext, train_trial

ROOT = Path(__file__).resolve().parents[2]


def test_a_finished_trial_is_left_alone(tmp_path: Path) -> None:
    spec = parse_spec((ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text())
    trial = expand(spec)[0]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id, status="FINISHED")
    before = client.get_run(run.info.run_id)
    ctx = SweepContext(sweep_id="s", tracking_uri=uri, trials={trial.trial_id: trial},
                       run_ids={trial.trial_id: run.info.run_id})  # fmt: skip
    train_trial({"trial_id": trial.trial_id}, ctx)  # outside Tune: would fail at tune.get_checkpoint() if it ran
    after = client.get_run(run.info.run_id)
    assert (
        after.info.end_time == before.info.end_time and after.data.metrics == {} and after.data.tags == before.data.tags
    )
