"""The report in a real browser: headless Chromium loads index.html (no script errors, every image
decodes), a screenshot is not blank, and the printed PDF has its pages and section titles.

CI (`.ci/run`) installs chromium and graphviz and sets DLCV_REQUIRE_SYSTEM_TOOLS=1: these tests then
FAIL when a tool is missing instead of skipping."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_report import full_runs

REQUIRED = os.environ.get("DLCV_REQUIRE_SYSTEM_TOOLS", "") not in ("", "0")


def need(tool: str, found) -> None:
    if not found:
        message = f"{tool} is not installed (scripts/system-deps.sh installs it)"
        if REQUIRED:
            pytest.fail(f"{message}; DLCV_REQUIRE_SYSTEM_TOOLS is set")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    from dlcv.report.pdf import find_chromium

    found = find_chromium()
    need("chromium", found)
    return found


@pytest.fixture(scope="module")
def report(browser, tmp_path_factory, demo_root):
    from dlcv.report.build import build_report

    out = tmp_path_factory.mktemp("report_browser")
    result = build_report([full_runs(tmp_path_factory, demo_root)], out, pdf=True, chromium=browser)
    assert result.errors == [] and not result.pdf_failed, result.pdf_note
    return result


CHECK = """<script>
window.addEventListener("error", e => { window.__errors = (window.__errors || []).concat([String(e.message)]); });
window.addEventListener("load", () => {
  const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src"));
  const out = document.createElement("pre");
  out.id = "dlcv-check";
  out.textContent = JSON.stringify({images: document.images.length, broken: bad, errors: window.__errors || []});
  document.body.appendChild(out);
});
</script>"""


def test_loads_without_errors_and_every_image_decodes(report, browser):
    from dlcv.report.pdf import run_chromium

    html = report.html.read_text()
    assert "<script" not in html  # the report itself runs no code; the check below is injected
    probe = report.out / "index.check.html"
    probe.write_text(html.replace("<head>", "<head>\n" + CHECK, 1))
    proc = run_chromium(browser, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                                  "--dump-dom", probe.resolve().as_uri()], timeout=120)
    probe.unlink()
    match = re.search(r'<pre id="dlcv-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"the page did not finish loading:\n{proc.stderr[-2000:]}"
    import json
    from html import unescape

    check = json.loads(unescape(match.group(1)))
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert check["images"] == len(srcs) >= 15
    assert check["broken"] == [] and check["errors"] == []
    console_errors = [line for line in proc.stderr.splitlines()
                      if "CONSOLE" in line and ("ERROR" in line or "Uncaught" in line)
                      or "Failed to load resource" in line or "ERR_FILE_NOT_FOUND" in line]
    assert console_errors == []


def test_screenshot_is_not_blank(report, browser, tmp_path):
    from PIL import Image

    from dlcv.report.pdf import run_chromium

    shot = tmp_path / "shot.png"
    run_chromium(browser, [f"--screenshot={shot}", "--window-size=1200,2000", "--virtual-time-budget=10000",
                           report.html.resolve().as_uri()], timeout=120)
    assert shot.is_file()
    with Image.open(shot) as img:
        assert img.size == (1200, 2000)
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    colours = np.unique(pixels[::7], axis=0)
    assert len(colours) > 50, f"only {len(colours)} distinct colours: blank page?"
    assert (pixels.min(1) < 100).mean() > 0.005  # some dark ink (text), not an empty white page


def pdf_text(pdf: Path) -> str:
    try:
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(str(pdf)).pages)
    except ImportError:
        tool = shutil.which("pdftotext")
        need("pypdf or pdftotext", tool)
        return subprocess.run([tool, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_pdf_pages_and_section_titles(report):
    assert report.pdf is not None and report.pdf.read_bytes()[:5] == b"%PDF-"
    assert 10 <= report.pages <= 60
    text = re.sub(r"\s+", " ", pdf_text(report.pdf))
    for title in ("Problem 1: Image classification", "1.2 Validation accuracy of A and B",
                  "1.6 t-SNE of model A", "Problem 2: Self-supervised pre-training",
                  "2.2 Office-Home fine-tuning in settings A–E", "Problem 3: Semantic segmentation",
                  "3.3 Validation mIoU of A and B", "3.4 Predicted masks over training",
                  "Appendix: runs, commands and build notes", "DEMO DATA: THESE ARE NOT RESULTS ON THE REAL TASK"):
        assert title in text, title


def test_architecture_figures_are_torchview_graphs(report):
    need("graphviz (dot)", shutil.which("dot"))
    svgs = sorted((report.out / "assets").glob("arch_*.svg"))
    assert {p.stem for p in svgs} >= {"arch_p1_seed_a", "arch_p1_b", "arch_p3_a_fcn32s", "arch_p3_b_deeplabv3"}
    for svg in svgs:
        assert "<svg" in svg.read_text()[:2000]
    assert "drawn by torchview + Graphviz dot" in report.markdown.read_text()
