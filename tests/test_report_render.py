"""The report's one rendering path (document -> Markdown -> HTML) and its artefact rule, on small
hand-written documents and run folders (no training)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_report import _write_run

from dlcv.report.doc import (
    Bullets,
    Callout,
    Code,
    Document,
    Figure,
    Para,
    Section,
    Table,
    not_available,
)
from dlcv.report.render import slug, to_html, to_markdown


def _doc(*blocks, title: str = "Results") -> Document:
    return Document("T <1>", "sub", [], [Section(title, "a question?", list(blocks), [Section("Child")])], "foot")


def test_table_cells_are_escaped_in_markdown_and_html():
    table = Table(["a|b", "<th>"], [["x|y", "<script>alert(1)</script> & `c|d`"], ["**bold**", 3]],
                  "caption <i>", numeric=[1])
    md = to_markdown(_doc(table))
    assert "| a\\|b | <th> |\n|---|---:|\n| x\\|y | <script>alert(1)</script> & `c\\|d` |" in md
    html = to_html(md, "T")
    assert "<script" not in html and "<th class=n>&lt;th&gt;</th>" in html and "<td>x|y</td>" in html
    assert "<td class=n>&lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>c|d</code></td>" in html
    assert "<td><strong>bold</strong></td><td class=n>3</td>" in html
    assert "<strong>Table 1.</strong> caption &lt;i&gt;" in html and "<title>T</title>" in html


def test_every_block_kind_renders_once_and_the_contents_links_resolve():
    blocks = [Para("text with `code <x>` and **bold**"), Bullets(["one", "two `2`"]), Code("a < b\n\n  c"),
              not_available("Thing", "`run` lacks `file`"), Callout("DEMO DATA", "generated"),
              Figure(["assets/a.png", "assets/b.svg"], "two images")]
    md = to_markdown(_doc(*blocks))
    assert "## 1 Results\n\n*a question?*\n" in md
    assert "- [1 Results](#1-results)\n  - [1.1 Child](#11-child)" in md and "### 1.1 Child" in md
    html = to_html(md, "T")
    for anchor in re.findall(r"\(#([^)]+)\)", md):
        assert f'id="{anchor}"' in html, anchor
    assert '<h2 id="1-results" class="part">1 Results</h2>\n<p class="question"><em>a question?</em></p>' in html
    assert "<p>text with <code>code &lt;x&gt;</code> and <strong>bold</strong></p>" in html
    assert "<ul><li>one</li><li>two <code>2</code></li></ul>" in html
    assert "<pre><code>a &lt; b\n\n  c</code></pre>" in html  # a code fence is kept whole, blank line included
    assert '<div class="callout na"><p><strong>Thing: not available</strong></p>' in html
    assert '<div class="callout demo">' in html
    assert ('<div class="imgs"><img src="assets/a.png" alt="Figure 1"> <img src="assets/b.svg" alt="Figure 1">'
            '</div>') in html
    assert "<hr>" in html and "<p>foot</p>" in html


def test_slug_follows_githubs_rule():
    assert slug("2.2 Office-Home fine-tuning in settings A–E") == "22-office-home-fine-tuning-in-settings-ae"
    assert slug("1.5 PCA of model A's second-last layer") == "15-pca-of-model-as-second-last-layer"


@pytest.fixture(scope="module")
def bare_runs(tmp_path_factory) -> Path:
    """Run folders with only the four core files: no figures, no eval/, no masks/."""
    runs = tmp_path_factory.mktemp("bare_runs")
    rows = [{"epoch": e, "train/loss": 1.0 / e, "val/acc": 0.1 * e, "epoch_time_s": 1.0} for e in (1, 2)]
    _write_run(runs / "p1_seed_a", "configs/demo/p1_seed_a.yaml", [], rows, {"val_acc": 0.2, "best_epoch": 2})
    _write_run(runs / "p2_byol", "configs/demo/p2_byol.yaml", [], rows, {"task": "byol"})
    _write_run(runs / "p3_b", "configs/demo/p3_b_deeplabv3.yaml", [], rows, {"val_miou": 0.3})
    return runs


def test_a_missing_artefact_names_the_file_and_the_command_that_writes_it(bare_runs, tmp_path):
    from dlcv.report.build import build_report

    result = build_report([bare_runs], tmp_path / "out", pdf=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert result.errors == []
    for run, config, files in (
            ("p1_seed_a", "p1_seed_a", ["figures/architecture.json", "figures/pca.png", "figures/tsne.png",
                                        "eval/metrics.json", "eval/confusion.png"]),
            ("p2_byol", "p2_byol", ["figures/schedules.png"]),
            ("p3_b", "p3_b_deeplabv3", ["figures/architecture.json", "figures/masks_over_epochs.png"])):
        for rel in files:
            assert f"> `{run}` lacks `{rel}`; `dlcv train configs/demo/{config}.yaml` writes it." in md, (run, rel)
    assert "20.00%" in md and "30.00%" in md  # the numbers that are there are still reported
    assert not (tmp_path / "out" / "assets" / "p1_seed_a_pca.png").exists()  # nothing drawn in their place


def test_lacks_reports_an_unreadable_file_as_unreadable(bare_runs):
    from dlcv.report.common import need_json
    from dlcv.report.runs import load_run

    run = load_run(bare_runs / "p1_seed_a")
    (run.path / "eval").mkdir(exist_ok=True)
    (run.path / "eval" / "metrics.json").write_text(json.dumps([1, 2]))
    data, blocks = need_json(run, "eval/metrics.json", "Per-class accuracy")
    assert data is None and blocks[0].title == "Per-class accuracy: not available"
    assert blocks[0].text.startswith("`p1_seed_a`: eval/metrics.json is unreadable (ValueError: not a JSON object)")
    (run.path / "eval" / "metrics.json").unlink()
