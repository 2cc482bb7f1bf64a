"""The per-sweep trial cache: closed sweeps kept, active ones reused for the TTL only, one MLflow query per miss."""

from __future__ import annotations

import asyncio
import threading
import time

from service.models import SweepRow
from service.trial_cache import TrialCache
from service.trials import TrialView


class CountingTrials:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.epochs = 1

    def trials(self, sweep_id: str, experiment: str | None = None) -> list[TrialView]:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay_s)
        view = TrialView(trial_id="t", run_id="r", variant="v", role="variant", method="rskd", seed=0,
                         status="RUNNING", epochs_done=self.epochs, knobs={}, metrics={})  # fmt: skip
        return [view]

    def ping(self) -> None:
        return None


def row(status: str = "RUNNING", runs_closed: bool = False, attempts: int = 1) -> SweepRow:
    return SweepRow(id="sw-1", name="n", status=status, runs_closed=runs_closed, attempts=attempts)


def test_active_sweep_is_reused_within_the_ttl_only() -> None:
    source = CountingTrials()
    cache = TrialCache(source, ttl_s=0.2)

    async def go() -> None:
        assert (await cache.trials(row()))[0].epochs_done == 1
        source.epochs = 2
        assert (await cache.trials(row()))[0].epochs_done == 1  # within the TTL
        await asyncio.sleep(0.25)
        assert (await cache.trials(row()))[0].epochs_done == 2

    asyncio.run(go())
    assert source.calls == 2


def test_zero_ttl_reads_every_time_and_closed_sweeps_are_kept() -> None:
    source = CountingTrials()
    cache = TrialCache(source, ttl_s=0.0)

    async def go() -> None:
        for _ in range(3):
            await cache.trials(row())
        assert source.calls == 3
        for _ in range(3):
            await cache.trials(row("SUCCEEDED", runs_closed=True))
        assert source.calls == 4
        ended = row("FAILED", runs_closed=False)  # ended, runs not closed yet: may still change
        ended.id = "sw-2"
        await cache.trials(ended)
        await cache.trials(ended)
        await cache.trials(row("SUCCEEDED", runs_closed=True, attempts=2))  # a resumed attempt: a new key
        assert source.calls == 7

    asyncio.run(go())


def test_concurrent_misses_share_one_query_and_lru_is_bounded() -> None:
    source = CountingTrials(delay_s=0.1)
    cache = TrialCache(source, ttl_s=5.0, max_entries=2)

    async def go() -> None:
        got = await asyncio.gather(*(cache.trials(row()) for _ in range(20)))
        assert len(got) == 20 and source.calls == 1
        for i in range(3):
            other = row()
            other.id = f"sw-{i + 10}"
            await cache.trials(other)
        assert len(cache._entries) == 2

    asyncio.run(go())
