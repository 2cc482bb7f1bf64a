"""Headless Chromium driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``: JSON messages
ended by NUL on file descriptors 3 and 4 — no WebSocket library, no browser driver): open a page, wait for what a
script reports, click, take a screenshot. For pages that need a click before they show what a test checks (the
MLflow UI's collapsed child runs); ``tests/browser.py`` covers pages a plain ``--dump-dom`` reads."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.browser import chromium

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--remote-debugging-pipe"]  # fmt: skip


def _high(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
    os.close(fd)
    return high


class Browser:
    """One Chromium and one page; ``with Browser(profile) as b: b.open(url); b.wait_for("js expr")``."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000) -> None:
        self.profile, self.size = profile, (width, height)
        self.next_id = 0
        self.buffer = b""

    def __enter__(self) -> Browser:
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # the browser's ends above 100 first: ``3<&a 4>&b`` would clobber one when a or b is itself 3 or 4
        to_browser_r, from_browser_w = (_high(fd) for fd in (to_browser_r, from_browser_w))
        # the browser reads commands on fd 3 and writes answers on fd 4 (bash: dash refuses fds above 9)
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        w, h = self.size
        self.call("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False, s=True)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # a browser already gone
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        os.close(self.to_browser)
        os.close(self.from_browser)

    def call(self, method: str, s: bool = False, **params: Any) -> dict[str, Any]:
        """Send a command (to the page's session when ``s``) and return its result; events are skipped."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if s:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit code {self.proc.poll()})")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def open(self, url: str) -> None:
        self.call("Page.navigate", s=True, url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", s=True, expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """The expression's value once it is truthy; TimeoutError with the page's text otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        text = self.evaluate("document.body ? document.body.innerText : ''") or ""
        raise TimeoutError(f"{expression!r} not true in {timeout:.0f} s; the page says: {text[:2000]}")

    def text(self) -> str:
        return str(self.evaluate("document.body.innerText"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", s=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
