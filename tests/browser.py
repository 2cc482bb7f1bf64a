"""Headless Chromium (Debian's ``chromium``) for the dashboard tests: the rendered DOM and a screenshot of a page.

``.ci/run`` installs it and sets ``CI``; elsewhere a missing browser skips the browser tests with how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=15000"]  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide chromium (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium here: apt-get install chromium (the browser tests need it)")
    return found


def artifacts() -> Path:
    """Where screenshots are kept for people to look at (RSKD_TEST_ARTIFACTS, default .test-artifacts/)."""
    out = Path(os.environ.get("RSKD_TEST_ARTIFACTS", ROOT / ".test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180
    )


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page loaded and its scripts ran."""
    out = _run(["--dump-dom", url], profile)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(url: str, path: Path, profile: Path, size: str = "1400,2400") -> Path:
    out = _run([f"--screenshot={path}", f"--window-size={size}", url], profile)
    assert out.returncode == 0 and path.exists() and path.stat().st_size > 10_000, out.stderr[-2000:]
    return path
