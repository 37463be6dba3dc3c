"""The report's assets/ folder: unique, safe file names; copies of run figures; stale files removed."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from dlcv.io import atomic_path

SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Assets:
    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.dir = self.out_dir / "assets"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.written: set[str] = set()

    def reserve(self, stem: str, suffix: str) -> tuple[Path, str]:
        """(absolute path, path relative to the report folder) of a new asset named after `stem`."""
        base = SAFE.sub("_", stem).strip("._") or "asset"
        name, k = f"{base}{suffix}", 2
        while name in self.written:
            name, k = f"{base}_{k}{suffix}", k + 1
        self.written.add(name)
        return self.dir / name, f"assets/{name}"

    def copy(self, src: Path, stem: str) -> str:
        """Copy a run's file into assets/ (atomically); returns its relative path."""
        src = Path(src)
        dest, rel = self.reserve(stem, src.suffix.lower())
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        return rel

    def remove_stale(self) -> int:
        """Delete files a previous build left that this build did not write."""
        n = 0
        for p in self.dir.iterdir():
            if p.is_file() and p.name not in self.written and not p.name.startswith("."):
                p.unlink()
                n += 1
        return n
