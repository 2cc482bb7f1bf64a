"""Every method's loss terms on a seeded tiny model, a fixed batch and fixed teacher signals equal stored values.

The values in ``loss_terms.json`` were produced by ``python -m tests.golden.cases``; a change here is a change of a
method's math and must be deliberate.
"""

from __future__ import annotations

import json

import pytest

from rskd_core.methods import METHODS
from tests.golden.cases import CASES, GOLDEN, compute_terms

STORED = json.loads(GOLDEN.read_text())


def test_every_registered_method_has_a_golden_case() -> None:
    assert set(METHODS.names()) <= set(CASES)
    assert set(STORED) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_terms_equal_the_stored_values(case: str) -> None:
    terms = compute_terms(case)
    assert terms.keys() == STORED[case].keys()
    for name, value in terms.items():
        assert value == pytest.approx(STORED[case][name], rel=2e-4, abs=1e-6), f"{case}: {name}"
