"""The OpenAPI document is the contract: what the server refuses, the schema refuses too, and the reverse."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from service.app import create_app
from service.settings import Settings
from tests.service.fakes import FakeSubmitter, FakeTrials

ROOT = Path(__file__).resolve().parents[2]
SMOKE: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text())


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(rskd_home=tmp_path, rskd_database_url=f"sqlite:///{tmp_path / 'api.db'}")
    with TestClient(create_app(settings, submitter=FakeSubmitter(), trials=FakeTrials(), sync=False)) as c:
        yield c


def spec_validator(client: TestClient) -> Draft202012Validator:
    document = client.get("/openapi.json").json()
    return Draft202012Validator({**document, "$ref": "#/components/schemas/SweepSpec"})


def changed(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SMOKE)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


REFUSED = {
    "a bool for an integer": changed("max_failures", False),
    "a string for an integer": changed("max_failures", "2"),
    "a variant name with a space": changed("variants", {"bad name": {}}),
    "a method without its name": changed("base.method", {"temperature": 4.0}),
    "a negative seed": changed("seeds", [-1]),
    "a seed twice": changed("seeds", [1, 1]),
    "an unknown baseline method": changed("baselines", [{"name": "nope"}]),
    "a grid axis without values": changed("grid", {"teacher.rule": []}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_schema_refuses_what_the_server_refuses(client: TestClient, case: str) -> None:
    body = REFUSED[case]
    assert list(spec_validator(client).iter_errors(body)), f"the schema allows {case}"
    r = client.post("/v1/sweeps", params={"dry_run": "true"}, json=body)
    assert r.status_code == 422 and r.json()["problems"], r.text


def test_the_server_accepts_a_spec_the_schema_allows(client: TestClient) -> None:
    assert not list(spec_validator(client).iter_errors(SMOKE))
    r = client.post("/v1/sweeps", params={"dry_run": "true"}, json=SMOKE)
    assert r.status_code == 200 and r.json()["valid"], r.text


def test_yaml_is_typed_by_its_parser_json_by_its_schema(client: TestClient) -> None:
    """YAML is validated in pydantic's lax mode (lists become tuples, "2" an integer); JSON strictly."""
    text = yaml.safe_dump({**SMOKE, "max_failures": "2"})
    r = client.post(
        "/v1/sweeps", params={"dry_run": "true"}, content=text, headers={"content-type": "application/yaml"}
    )
    assert r.status_code == 200, r.text
    r = client.post("/v1/sweeps", params={"dry_run": "true"}, json={**SMOKE, "max_failures": "2"})
    assert r.status_code == 422 and any(p.startswith("max_failures") for p in r.json()["problems"]), r.text


def test_an_unknown_report_baseline_is_a_missing_resource(client: TestClient) -> None:
    sid = client.post("/v1/sweeps", json=SMOKE).json()["id"]
    r = client.get(f"/v1/sweeps/{sid}/report", params={"format": "md", "baseline": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["detail"], r.text


def test_the_spec_and_the_report_keep_their_own_schemas(client: TestClient) -> None:
    """The SweepSpec's definitions join FastAPI's components: a name both use must not swap one schema for the other."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "column" in schemas["Objective"]["properties"] and "column" not in schemas["ObjectiveSpec"]["properties"]
