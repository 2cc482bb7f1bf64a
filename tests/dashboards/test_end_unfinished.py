"""``end_unfinished`` against a run whose own process ends it at the same moment: MLflow's SQL store lets only one
of two first writes of a tag through (UNIQUE violation for the other), as the extend end-to-end test once hit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dashboards.layout import Tag, end_unfinished


class RacingClient:
    """A fake MlflowClient: the first ``set_tag`` of each run fails as the loser of the race does; ``ended_by_other``
    says whether the other process had ended the run by then."""

    def __init__(self, ended_by_other: bool, failures: int = 1) -> None:
        self.status = {"r1": "RUNNING"}
        self.tags: dict[str, dict[str, str]] = {"r1": {}}
        self.failures = failures
        self.ended_by_other = ended_by_other

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        if self.failures:
            self.failures -= 1
            if self.ended_by_other:
                self.status[run_id] = "KILLED"
            raise RuntimeError("(sqlite3.IntegrityError) UNIQUE constraint failed: tags.key, tags.run_uuid")
        self.tags[run_id][key] = value

    def set_terminated(self, run_id: str, status: str) -> None:
        self.status[run_id] = status

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=self.status[run_id]))


def test_a_run_its_own_process_ended_meanwhile_is_left_as_it_ended() -> None:
    client = RacingClient(ended_by_other=True)
    assert end_unfinished(client, [client.get_run("r1")], "KILLED", "the sweep was interrupted") == []
    assert client.status["r1"] == "KILLED" and client.tags["r1"] == {}


def test_a_run_still_open_after_a_lost_write_is_ended_on_the_next_try() -> None:
    client = RacingClient(ended_by_other=False)
    assert end_unfinished(client, [client.get_run("r1")], "FAILED", "never reported its end") == ["r1"]
    assert client.status["r1"] == "FAILED" and client.tags["r1"] == {Tag.END_REASON: "never reported its end"}


def test_a_store_that_keeps_failing_still_raises() -> None:
    client = RacingClient(ended_by_other=False, failures=5)
    with pytest.raises(RuntimeError, match="UNIQUE"):
        end_unfinished(client, [client.get_run("r1")], "KILLED", "x")
    assert client.status["r1"] == "RUNNING"
