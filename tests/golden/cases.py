"""The fixed inputs of the golden tests: a seeded tiny model, a fixed batch and fixed teacher signals per method.

``python -m tests.golden.cases`` rewrites ``loss_terms.json`` — only do that for an intended change of a method's
math, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rskd_core.config_io import validate
from rskd_core.data import Batch
from rskd_core.methods import ModelOutput, Progress, create_method
from rskd_core.models import create_model
from rskd_core.teachers import TeacherSignal

GOLDEN = Path(__file__).with_name("loss_terms.json")
K, B = 5, 6

# method name → (method overrides, does the signal carry a row mask?)
CASES: dict[str, dict[str, Any]] = {
    "ce": {},
    "label_smoothing": {},
    "tf_kd_reg": {},
    "tf_kd_self": {},
    "cs_kd": {},
    "ps_kd": {},
    "byot": {"feature_weight": 0.05},
    "dlb": {},
    "rskd": {"layers": ["last", "stage1", "stage2", "stage3"], "weights": {"kd": 0.5, "res_ce": 0.2}},
    "rskd_mse_through": {"name": "rskd", "out_loss": "mse", "gap_grad": "through", "target": "last",
                         "feat_norm": "l2", "adapter": "pool", "layers": ["last", "stage1", "stage2"]},
}  # fmt: skip


def compute_terms(case: str) -> dict[str, float]:
    overrides = dict(CASES[case])
    name = overrides.pop("name", case)
    cfg = _cfg(name, overrides)
    torch.manual_seed(1234)
    model = create_model(cfg.model, num_classes=K, in_channels=3)
    method = create_method(cfg.method, model)
    g = torch.Generator().manual_seed(99)
    x = torch.randn(B, 3, 16, 16, generator=g)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    batch = Batch(x, y, torch.arange(B))
    model.train()
    method.train()
    logits, taps = model.forward_taps(x, method.student_taps)
    t_logits = torch.randn(B, K, generator=g) * 2
    feats = {name: torch.randn(tap.shape, generator=g) for name, tap in taps.items()}
    signal = TeacherSignal(
        logits=t_logits,
        features={k: feats[k] for k in method.teacher_taps},
        probs=torch.softmax(t_logits, 1),
        mask=torch.tensor([True, True, True, False, False, False]) if name == "dlb" else None,
    )
    terms = method.losses(
        batch, ModelOutput(logits, taps), signal, Progress(epoch=3, step=1, steps_per_epoch=4, epochs=10)
    )
    return {k: float(v.detach()) for k, v in sorted(terms.items())}


def _cfg(name: str, overrides: dict[str, Any]) -> Any:
    from rskd_core.config import METHOD_CONFIGS

    rule = METHOD_CONFIGS[name].default_teacher
    return validate(
        {
            "model": {"name": "preact_resnet_tiny", "width": 4},
            "method": {"name": name, **overrides},
            "teacher": {"rule": rule},
        }
    )


def main() -> None:
    torch.set_num_threads(1)
    GOLDEN.write_text(json.dumps({case: compute_terms(case) for case in CASES}, indent=2) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
