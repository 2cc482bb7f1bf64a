"""A request body → a validated SweepSpec and its trials, or a :class:`Refused` that says what to change.

The body's size limit (413), its format from the content type (YAML for ``*yaml*``, JSON otherwise), the spec's own
rules (``worker.spec``) and this service's limits (epochs per trial, data paths inside RSKD_DATA_ROOT), all 422.
"""

from __future__ import annotations

from fastapi import Request

from service.settings import Settings
from service.sweeps import Refused
from worker.spec import SpecError, SweepSpec, Trial, data_path_problems, epoch_limit_problems, expand, parse_spec


def body_format(content_type: str | None) -> str:
    """``yaml`` for application/yaml (and x-yaml, text/yaml), else ``json`` (also when the header is missing)."""
    return "yaml" if "yaml" in (content_type or "").lower() else "json"


async def read_body(request: Request, limit: int) -> str:
    body = await request.body()
    if len(body) > limit:
        raise Refused(413, f"request body is {len(body)} bytes, over the limit of {limit} bytes")
    return body.decode("utf-8", errors="replace")


def limit_problems(trials: list[Trial], settings: Settings) -> list[str]:
    """What this service refuses beyond the spec's own rules: too many epochs, data paths outside RSKD_DATA_ROOT."""
    over = epoch_limit_problems(trials, settings.rskd_max_epochs)  # the driver checks the same, with the same words
    return over + data_path_problems(trials, settings.rskd_data_root)


def validated(text: str, fmt: str, settings: Settings) -> tuple[SweepSpec, list[Trial]]:
    """The spec and every one of its trials, validated against the spec's rules and this service's limits."""
    try:
        spec = parse_spec(text, fmt=fmt)
        trials = expand(spec, settings.rskd_max_trials)
    except SpecError as err:
        raise Refused(422, str(err).splitlines()[0], err.problems) from None
    problems = limit_problems(trials, settings)
    if problems:
        raise Refused(422, f"sweep {spec.name}: {len(problems)} trials break this service's limits", problems)
    return spec, trials


async def read_spec(request: Request, settings: Settings) -> tuple[SweepSpec, list[Trial]]:
    """The request's SweepSpec and its trials (413 over ``RSKD_MAX_BODY_BYTES``, 422 for an invalid spec)."""
    text = await read_body(request, settings.rskd_max_body_bytes)
    return validated(text, body_format(request.headers.get("content-type")), settings)
