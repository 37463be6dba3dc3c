"""The checkpoints the graded scripts use: where they live and how hw1_download_ckpt.sh gets them."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from dlcv.errors import CheckpointError
from dlcv.io import atomic_path, load_model_file

REPO = Path(__file__).resolve().parents[2]  # the checkout hw1_*.sh run from
SOURCES_FILE = REPO / "hw1_checkpoints.txt"


def checkpoint_path(problem: str) -> Path:
    """$DLCV_P<n>_CKPT, else checkpoints/p<n>_model.pt in the repo."""
    env = os.environ.get(f"DLCV_{problem.upper()}_CKPT")
    return Path(env) if env else REPO / "checkpoints" / f"{problem}_model.pt"


def checkpoint_source(problem: str) -> tuple[str, str]:
    """(url or path, sha256 or "") from $DLCV_P<n>_URL or hw1_checkpoints.txt."""
    env = os.environ.get(f"DLCV_{problem.upper()}_URL")
    if env:
        return env, ""
    if SOURCES_FILE.is_file():
        for line in SOURCES_FILE.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 2 and parts[0] == problem and parts[1] != "-":
                return parts[1], parts[2] if len(parts) > 2 else ""
    raise CheckpointError(
        f"no source for the {problem} checkpoint: set DLCV_{problem.upper()}_URL or put its URL in "
        f"{SOURCES_FILE.name} (upload runs/<name>/model.pt of your trained run)")


def fetch(problem: str) -> Path:
    source, sha256 = checkpoint_source(problem)
    dest = checkpoint_path(problem)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        if source.startswith(("http://", "https://")):
            print(f"{problem}: downloading {source}", file=sys.stderr)
            with urllib.request.urlopen(source, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        else:
            shutil.copyfile(source.removeprefix("file://"), tmp)
        if sha256:
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            if digest != sha256:
                raise CheckpointError(f"{source}: sha256 {digest} does not match the expected {sha256}")
        load_model_file(tmp)  # refuse anything that is not a safe-loading dlcv checkpoint
    print(f"{problem}: {dest}", file=sys.stderr)
    return dest


def fetch_checkpoints(problems) -> int:
    failed = 0
    for problem in problems:
        try:
            fetch(problem)
        except (CheckpointError, OSError) as exc:
            print(f"error: {problem}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
