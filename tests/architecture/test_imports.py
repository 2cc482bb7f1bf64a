"""The packages import one way only (docs/architecture.md): service → worker → dashboards, and every one of them →
rskd_core, which imports none of them; MLflow tag keys are spelled only in dashboards/layout.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rskd_core", "worker", "dashboards", "service")
# what each package may import of the others (the layering, lowest first)
ALLOWED = {
    "rskd_core": set(),
    "dashboards": {"rskd_core"},
    "worker": {"rskd_core", "dashboards"},
    "service": {"rskd_core", "dashboards", "worker"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {n.split(".")[0] for n in names} & set(PACKAGES)
    return found


def test_packages_import_one_way() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {other}"
        for package, allowed in ALLOWED.items()
        for path in (ROOT / package).rglob("*.py")
        for other in imported_packages(path) - allowed - {package}
    ]
    assert not wrong, wrong


def test_tag_keys_are_spelled_once() -> None:
    key = re.compile(r"""["'`](rskd\.[a-z_]+|mlflow\.(parentRunId|runName))["'`]""")
    spelled = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "dashboards" / "layout.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if key.search(line)
    ]
    assert not spelled, spelled
