"""After a plain (non-editable) `pip install .`, from any folder: the packaged configs train, the
demo data is written, and fetch-checkpoints uses the hw1_checkpoints.txt of the current folder;
the bench tool (a checkout tool) is not in the wheel and says so."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """The project's files as a clean clone has them (tracked + new, not ignored): a stale build/
    or a .venv of the checkout must not reach the wheel."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).exists() or (REPO / name).is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    source = _source_copy(tmp_path_factory.mktemp("source"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return site


def _dlcv(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m dlcv` with the installed copy and this env's packages, but without `site`: the
    test env's editable install of the checkout (a .pth import hook) must not serve any module."""
    env = {**os.environ, "PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}"}
    return subprocess.run([sys.executable, "-S", "-m", "dlcv", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_installed_package_works_outside_the_checkout(installed, tmp_path):
    assert (installed / "dlcv" / "configs" / "p1" / "seed_a.yaml").is_file()
    probe = _dlcv(installed, tmp_path, "--help")
    assert probe.returncode == 0
    assert not (installed / "dlcv" / "bench").exists()
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert _dlcv(installed, work, "demo-data", "--out", "data", "--problems", "p1").returncode == 0
    proc = _dlcv(installed, work, "train", "configs/demo/p1_seed_a.yaml", "data.root=data", "trainer.epochs=1",
                 "features.enabled=false", "trainer.progress=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = work / "runs" / "p1_seed_a" / "model.pt"
    assert model.is_file()
    (work / "hw1_checkpoints.txt").write_text(f"p1 {model}\n")
    proc = _dlcv(installed, work, "fetch-checkpoints", "p1")
    assert proc.returncode == 0 and (work / "checkpoints" / "p1_model.pt").is_file(), proc.stderr[-2000:]
    proc = _dlcv(installed, work, "bench")
    assert proc.returncode != 0 and "runs from a checkout" in proc.stderr
