"""rskd_core stays importable and trainable with torch, torchvision, numpy, pydantic and scikit-learn alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("ray", "mlflow", "fastapi", "sqlalchemy", "yaml", "pandas")

PROBE = """
import sys
for name in {forbidden!r}:
    sys.modules[name] = None  # any import of these now fails
import rskd_core, rskd_core.cli, rskd_core.engine, rskd_core.methods, rskd_core.teachers, rskd_core.data
from rskd_core.config_io import validate
from rskd_core.engine import Trainer
cfg = validate({cfg!r})
result = Trainer(cfg).fit()
print(result.epochs_done)
"""


def test_no_forbidden_imports_in_source() -> None:
    for path in (ROOT / "rskd_core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            for mod in ("ray", "mlflow", "fastapi", "sqlalchemy"):
                assert not stripped.startswith((f"import {mod}", f"from {mod}")), f"{path}: {stripped}"


def test_trains_without_ray_mlflow_fastapi_or_yaml() -> None:
    cfg = {
        "data": {"name": "synthetic", "image_size": 8, "train_size": 32, "test_size": 16, "num_classes": 3},
        "model": {"name": "preact_resnet_tiny", "width": 4},
        "method": {"name": "rskd", "layers": ["last", "stage2"]},
        "teacher": {"rule": "ema"},
        "optim": {"epochs": 1, "batch_size": 16, "milestones": []},
        "runtime": {"device": "cpu", "threads": 1},
    }
    code = PROBE.format(forbidden=FORBIDDEN, cfg=json.loads(json.dumps(cfg)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_config_validation_does_not_load_torch() -> None:
    code = (
        "import sys; from rskd_core.config_io import validate; validate({'method': {'name': 'rskd'}, "
        "'teacher': {'rule': 'ema'}}); print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"  # a service validates specs without loading the training stack
