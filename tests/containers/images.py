"""The stand-in base images, built here because no registry can be reached: a debootstrapped Debian, and on it a
Python with torch (for the CUDA PyTorch base) and Debian's PostgreSQL (for ``postgres:16``). Each tag carries a hash
of its recipe, so a machine that built them once reuses them until the recipe changes."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.containers.podman import Podman

HERE = Path(__file__).resolve().parent / "images"


def _recipe_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for root in paths for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class BaseImages:
    debian: str
    python_torch: str
    postgres: str


def tags() -> BaseImages:
    rootfs = HERE / "debian-rootfs.sh"
    return BaseImages(
        debian=f"localhost/rskd-test/debian:{_recipe_hash(rootfs)}",
        python_torch=f"localhost/rskd-test/python-torch:{_recipe_hash(HERE / 'python-torch', rootfs)}",
        postgres=f"localhost/rskd-test/postgres:{_recipe_hash(HERE / 'postgres', rootfs)}",
    )


def ensure(podman: Podman, log: list[str]) -> BaseImages:
    """Build whichever stand-in is missing; ``log`` gets a line (with seconds taken) for each."""
    want = tags()
    if not podman.has_image(want.debian):
        t0 = time.monotonic()
        out = subprocess.run(["bash", str(HERE / "debian-rootfs.sh"), want.debian], env=podman.env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"debootstrap of {want.debian} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        log.append(f"built {want.debian} in {time.monotonic() - t0:.0f} s")
    for tag, folder in ((want.postgres, "postgres"), (want.python_torch, "python-torch")):
        if not podman.has_image(tag):
            t0 = time.monotonic()
            podman.run("build", "-q", "--build-arg", f"DEBIAN_IMAGE={want.debian}", "-t", tag, str(HERE / folder),
                       timeout=1800)  # fmt: skip
            log.append(f"built {tag} in {time.monotonic() - t0:.0f} s")
    return want


def prune(podman: Podman, keep: BaseImages) -> None:
    """Drop stand-ins of older recipes and dangling layers (an earlier build of the project image), so a machine that
    runs the test often does not fill its disk."""
    current = {keep.debian, keep.python_torch, keep.postgres}
    listed = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=localhost/rskd-test/*")
    for tag in set(listed.stdout.split()) - current:
        podman.run("rmi", tag, check=False)
    podman.run("image", "prune", "-f", check=False)
