"""HTML -> PDF with headless Chromium (`--print-to-pdf`), offline and with a throw-away profile."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
# no network, no first-run UI, no background services: a report build must not reach out anywhere
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
         "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars"]


class PdfError(RuntimeError):
    pass


def find_chromium(explicit: Optional[str] = None) -> Optional[str]:
    """The browser to use: an explicit path, else $DLCV_CHROMIUM, else the first known name on PATH.
    A browser that was named but is not there is None (no silent substitute)."""
    if named := explicit or os.environ.get("DLCV_CHROMIUM"):
        return shutil.which(named)
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def run_chromium(browser: str, args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Chromium with the offline flags and a fresh profile in a temporary folder (HOME too: crash
    reports and caches stay inside it)."""
    with tempfile.TemporaryDirectory(prefix="dlcv-chromium-") as profile:
        try:
            return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                                  text=True, timeout=timeout, env={**os.environ, "HOME": profile},
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise PdfError(f"{browser} did not finish within {timeout:.0f} s") from exc


def html_to_pdf(html: Path, pdf: Path, browser: str, timeout: float = 120.0) -> Path:
    """Print `html` to `pdf` (written beside it first, then renamed: never a half-written PDF)."""
    from dlcv.io import atomic_path

    with atomic_path(pdf) as tmp:
        proc = run_chromium(browser, ["--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
                                      f"--print-to-pdf={tmp}", Path(html).resolve().as_uri()], timeout)
        if not tmp.is_file() or tmp.stat().st_size < 100 or tmp.read_bytes()[:5] != b"%PDF-":
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-6:])
            raise PdfError(f"{browser} wrote no PDF (exit {proc.returncode}){': ' + tail if tail else ''}")
    return Path(pdf)


def page_count(pdf: Path) -> int:
    """Pages of a PDF: pypdf when installed, else the /Type /Page objects (Chromium's PDFs keep the
    page tree uncompressed)."""
    try:
        from pypdf import PdfReader

        return len(PdfReader(str(pdf)).pages)
    except ImportError:
        import re

        return len(re.findall(rb"/Type\s*/Page(?!s)", Path(pdf).read_bytes()))
