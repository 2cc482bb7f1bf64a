"""``python -m rskd_core.summary DIR [DIR ...]``: a side-by-side table of finished ``rskd train`` runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def read_run(directory: Path) -> dict[str, Any]:
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines if line.strip()]
    if not history:
        raise ValueError(f"{directory}: metrics.jsonl has no epochs")
    cfg = json.loads((directory / "config.json").read_text())
    best = max(history, key=lambda r: r["test/top1"])
    last = history[-1]
    return {
        "run": directory.name,
        "method": cfg["method"]["name"],
        "teacher": cfg["teacher"]["rule"],
        "epochs": last["epoch"],
        "final_top1": last["test/top1"],
        "best_top1": best["test/top1"],
        "final_nll": last["test/nll"],
        "final_ece": last["test/ece"],
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| run | method | teacher | epochs | final top-1 | best top-1 | NLL | ECE (%) |"
    sep = "|---|---|---|---:|---:|---:|---:|---:|"
    body = [
        f"| {r['run']} | {r['method']} | {r['teacher']} | {r['epochs']} | {r['final_top1']:.4f} | "
        f"{r['best_top1']:.4f} | {r['final_nll']:.4f} | {r['final_ece']:.2f} |"
        for r in rows
    ]
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> int:
    dirs = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if not dirs:
        print("usage: python -m rskd_core.summary RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    print(markdown_table([read_run(d) for d in dirs]))
    print("\n(single seed each: a difference here is not evidence; sweeps report mean ± std over seeds)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
