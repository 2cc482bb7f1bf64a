"""Reading RunConfigs from files and the command line: YAML/JSON, ``--set dotted.path=value``, ``--method NAME``.

Values given with ``--set`` are parsed as YAML scalars or flow collections (``0.5``, ``true``, ``[stage1, last]``) and
then typed by pydantic, so the same rules apply to a file, an override and a REST payload. YAML is always parsed with
``safe_load``: no tags that build objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rskd_core.config import METHOD_CONFIGS, RunConfig


class ConfigError(ValueError):
    """A config that cannot be used, with a message that says what to change."""


def parse_text(text: str, *, fmt: str = "yaml") -> dict[str, Any]:
    """Parse a YAML or JSON document into a mapping."""
    try:
        if fmt == "json":
            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError:  # pragma: no cover - the GPU box may lack PyYAML; JSON still works
                data = json.loads(text)
            else:
                # the safe loader (no tags that build objects), in C when PyYAML has libyaml: 10x faster
                data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except ValueError as err:  # json.JSONDecodeError
        raise ConfigError(f"not valid JSON: {err}") from None
    except Exception as err:  # yaml.YAMLError and its subclasses (tags that build objects among them)
        if type(err).__module__.startswith("yaml"):
            raise ConfigError(f"not valid YAML: {err}") from None
        raise
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping at the top level, got {type(data).__name__}")
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return parse_text(p.read_text(), fmt="json" if p.suffix == ".json" else "yaml")


def parse_value(raw: str) -> Any:
    """Type a command-line value the way YAML would (numbers, booleans, null, lists); fall back to the string."""
    try:
        import yaml

        return yaml.safe_load(raw)
    except ImportError:  # pragma: no cover
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    except yaml.YAMLError:
        return raw


def set_dotted(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c`` set to ``value`` (intermediate mappings are created)."""
    return set_dotted_many(data, [(path, value)])


def set_dotted_many(data: dict[str, Any], items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Return one copy of ``data`` with every ``(dotted.path, value)`` set, in order."""
    out: dict[str, Any] = json.loads(json.dumps(data))  # deep copy of plain data
    for path, value in items:
        keys = path.split(".")
        if not all(keys):
            raise ConfigError(f"bad dotted path {path!r}: use names separated by dots, e.g. optim.lr")
        node = out
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {path}: {'.'.join(keys[: i + 1])} is a value, not a section")
            node[key] = child
            node = child
        node[keys[-1]] = json.loads(json.dumps(value))  # the caller's lists and mappings are not shared
    return out


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``dotted.path=value`` strings in order."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like dotted.path=value, e.g. optim.lr=0.05")
        path, raw = item.split("=", 1)
        data = set_dotted(data, path.strip(), parse_value(raw.strip()))
    return data


def swap_method(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Replace the method by ``name`` with its defaults; pick its default teacher rule if the current one won't do."""
    if name not in METHOD_CONFIGS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHOD_CONFIGS))}")
    cls = METHOD_CONFIGS[name]
    out = set_dotted(data, "method", {"name": name})
    rule = (out.get("teacher") or {}).get("rule", "none")
    if rule not in cls.teachers:
        out = set_dotted(out, "teacher.rule", cls.default_teacher)
        out = set_dotted(out, "teacher.checkpoint", None)
        for key, value in cls.teacher_defaults.items():
            out = set_dotted(out, f"teacher.{key}", value)
    return out


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: the dotted field path, what was wrong, and the value given."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        given = e.get("input")
        shown = "" if isinstance(given, Mapping) or given is None else f" (got {given!r})"
        lines.append(f"{loc or 'config'}: {msg}{shown}")
    return "\n".join(lines)


def validate(data: Mapping[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError("invalid run config:\n" + format_validation_error(err)) from None


def load_run_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), method: str | None = None
) -> RunConfig:
    """File (optional) → ``--method`` swap → ``--set`` overrides → validated RunConfig."""
    data = read_config_file(path) if path is not None else {}
    if method is not None:
        data = swap_method(data, method)
    data = apply_overrides(data, overrides)
    return validate(data)
