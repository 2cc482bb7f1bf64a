"""Trial views read from MLflow, cached per sweep.

Many clients poll the same sweep (``rskd submit --follow``, the dashboard pages), and one MLflow search costs ~10 ms
of CPU. A sweep whose job has ended and whose runs are closed never changes again: its trials are kept (bounded LRU).
An active sweep's trials are reused for ``RSKD_TRIALS_TTL_S`` and concurrent misses share one MLflow query.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from service.models import SweepRow
from service.repository import TERMINAL
from service.trials import TrialSource, TrialView


@dataclass(frozen=True)
class _Entry:
    trials: list[TrialView]
    at: float
    final: bool


class TrialCache:
    def __init__(self, source: TrialSource, ttl_s: float, max_entries: int = 512) -> None:
        self.source = source
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, int], asyncio.Future[list[TrialView]]] = {}

    async def trials(self, row: SweepRow) -> list[TrialView]:
        key = (row.id, row.attempts)  # a resume starts a new attempt: never served from the old one
        hit = self._entries.get(key)
        if hit is not None and (hit.final or time.monotonic() - hit.at < self.ttl_s):
            self._entries.move_to_end(key)
            return hit.trials
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.source.trials, row.id, row.name))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        trials = await asyncio.shield(pending)
        final = row.status in TERMINAL and bool(row.runs_closed)
        if final or self.ttl_s > 0:
            self._entries[key] = _Entry(trials, time.monotonic(), final)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return trials
