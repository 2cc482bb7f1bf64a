"""Persistence of sweeps: the only place that reads and writes the ``sweeps`` table."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import SweepRow
from worker.states import ACTIVE, TERMINAL, SweepStatus


def now() -> datetime:
    return datetime.now(UTC)


def new_sweep_id() -> str:
    return "sw-" + secrets.token_hex(6)


class SweepRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    def create(
        self, *, name: str, spec_json: str, spec_hash: str, trials: int, idempotency_key: str | None
    ) -> SweepRow:
        t = now()
        row = SweepRow(
            id=new_sweep_id(),
            name=name,
            status=SweepStatus.PENDING,
            spec_json=spec_json,
            spec_hash=spec_hash,
            idempotency_key=idempotency_key,
            trials=trials,
            attempts=0,
            runs_closed=False,
            created_at=t,
            updated_at=t,
        )
        self.s.add(row)
        self.s.commit()
        return row

    def get(self, sweep_id: str) -> SweepRow | None:
        return self.s.get(SweepRow, sweep_id)

    def by_idempotency_key(self, key: str) -> SweepRow | None:
        return self.s.scalars(select(SweepRow).where(SweepRow.idempotency_key == key)).first()

    def page(self, *, status: SweepStatus | None, limit: int, offset: int) -> tuple[list[SweepRow], int]:
        q = select(SweepRow)
        count = select(func.count()).select_from(SweepRow)
        if status:
            q = q.where(SweepRow.status == status)
            count = count.where(SweepRow.status == status)
        rows = self.s.scalars(q.order_by(SweepRow.created_at.desc(), SweepRow.id).limit(limit).offset(offset)).all()
        return list(rows), int(self.s.scalar(count) or 0)

    def unclosed(self) -> Sequence[SweepRow]:
        """Ended sweeps whose MLflow runs have not been checked yet (a job can die before marking them)."""
        q = select(SweepRow).where(SweepRow.status.in_(TERMINAL), SweepRow.runs_closed.is_(False))
        return self.s.scalars(q).all()

    def active(self) -> Sequence[SweepRow]:
        return self.s.scalars(select(SweepRow).where(SweepRow.status.in_(ACTIVE))).all()

    def update(
        self, row: SweepRow, *, status: SweepStatus | None = None, message: str | None = None, **fields: object
    ) -> None:
        if status is not None and status != row.status:
            row.status = status
            if status in TERMINAL:
                row.finished_at = now()
        if message is not None:
            row.message = message
        for k, v in fields.items():
            setattr(row, k, v)
        row.updated_at = now()
        self.s.commit()
