"""What the API reads from MLflow about a sweep (its trials, its full data for the report and plots), cached per sweep.

Many clients poll the same sweep (``rskd submit --follow``, the dashboard pages), and one MLflow search costs ~10 ms
of CPU (a report with its metric histories much more). A sweep whose job has ended and whose runs are closed never
changes again: what was read is kept (bounded LRU). An active sweep's is reused for ``RSKD_TRIALS_TTL_S``, and
concurrent misses share one read.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from dashboards.collect import SweepData
from service.models import SweepRow
from service.trials import TrialSource, TrialView
from worker.states import TERMINAL

T = TypeVar("T")
Key = tuple[str, str, int, int]


@dataclass(frozen=True)
class _Entry:
    value: Any
    at: float
    final: bool


class TrialCache:
    def __init__(self, source: TrialSource, ttl_s: float, max_entries: int = 512) -> None:
        self.source = source
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future[Any]] = {}

    async def trials(self, row: SweepRow) -> list[TrialView]:
        return await self.get(row, "trials", lambda: self.source.trials(row.id, row.name))

    async def data(self, row: SweepRow) -> SweepData:
        return await self.get(row, "data", lambda: self.source.sweep_data(row.id, row.name))

    async def get(self, row: SweepRow, kind: str, load: Callable[[], T]) -> T:
        """``load()`` (run in a thread) or what it gave before for this sweep and attempt, while still valid."""
        # a resume starts a new attempt, an extension a new job: never served from the old one
        key = (kind, row.id, row.extensions or 0, row.attempts)
        hit = self._entries.get(key)
        if hit is not None and (hit.final or time.monotonic() - hit.at < self.ttl_s):
            self._entries.move_to_end(key)
            return cast(T, hit.value)
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(load))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        value = await asyncio.shield(pending)
        final = row.status in TERMINAL and bool(row.runs_closed)
        if final or self.ttl_s > 0:
            self._entries[key] = _Entry(value, time.monotonic(), final)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return cast(T, value)
