"""`dlcv report` without a browser: built from run folders of tiny real P1 trainings (plus P2/P3 run
folders written here in the jobs' formats, figures included), with missing and broken artefacts."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

P1_SECTIONS = [
    "1 Problem 1: Image classification (50 classes)",
    "1.1 Network architecture of models A and B",
    "1.2 Validation accuracy of A and B",
    "1.3 Implementation details of model A",
    "1.4 Model B and how it differs from model A",
    "1.5 PCA of model A's second-last layer",
    "1.6 t-SNE of model A's second-last layer over training",
    "1.7 Per-class accuracy and confusion matrices",
    "1.8 Training curves and throughput",
]

_RUNS: dict[str, Path] = {}  # one set of trained run folders per pytest session (shared with the browser tests)


def _train_all(jobs: list[list[str]]) -> None:
    """`python -m dlcv train ...` for each job, side by side (most of each is interpreter start-up)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "dlcv", "train", *job], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for job in jobs]
    for job, proc in zip(jobs, procs):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"dlcv train {' '.join(job)} failed:\n{out[-3000:]}"


def p1_runs(tmp_path_factory, demo_root: Path) -> Path:
    """runs/ with a tiny model A (seed CNN, 2 epochs, features at epochs 1 and 2) and model B
    (EfficientNet-Lite0 with its real ImageNet weights, 1 epoch of 2 batches)."""
    if "p1" not in _RUNS:
        runs = tmp_path_factory.mktemp("report_runs")
        common = [f"data.root={demo_root}", f"run.dir={runs}", "trainer.progress=false"]
        _train_all([["configs/demo/p1_seed_a.yaml", *common, "trainer.epochs=2"],
                    ["configs/demo/p1_b.yaml", *common, "trainer.epochs=1", "trainer.limit_train_batches=2",
                     "model.input_size=64"]])
        write_architectures(runs)
        _RUNS["p1"] = runs
    return _RUNS["p1"]


def write_architectures(runs: Path) -> None:
    """figures/architecture.* as a job writes them at training time, for run folders without them
    (the P2/P3 folders written here, and P1 runs of a job that does not draw it yet)."""
    import torch

    from dlcv.analysis.architecture import ARCH_JSON, write_architecture
    from dlcv.runfolder import read_config

    for run in sorted(p for p in runs.iterdir() if (p / "config.yaml").is_file()):
        cfg = read_config(run)
        if (run / ARCH_JSON).is_file() or cfg["task"] not in ("classify", "segment") or cfg.get("dataset") == "office":
            continue
        with torch.device("meta"):
            if cfg["task"] == "classify":
                from dlcv.tasks.classification import ClassificationTask

                model, size = ClassificationTask(cfg, inference=True).model, 32
            else:
                from dlcv.tasks.segmentation import SegmentationTask

                model, size = SegmentationTask(cfg, inference=True).segmenter, 64
        write_architecture(model, size, run)


# ------------------------------------------------------------------------------------ P2 / P3 folders
def _write_run(folder: Path, config: str, overrides: list[str], rows: list[dict], summary: dict) -> Path:
    """A run folder as the jobs write it: resolved config.yaml, meta.json, epochs.csv, summary.json."""
    from dlcv.config import load_config, to_yaml

    cfg = load_config(config, [f"run.dir={folder.parent}", f"run.name={folder.name}", *overrides])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(to_yaml(cfg))
    meta = {"command": f"dlcv train {config}", "date": "2026-01-02T03:04:05+00:00", "host_cpu": "x86_64",
            "cpu_threads": 2, "gpu": None, "python": "3.11", "torch": "2", "data_kind": "demo", "seed": 0}
    (folder / "meta.json").write_text(json.dumps(meta))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(folder / "epochs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def write_p2_p3_runs(runs: Path) -> None:
    """BYOL, settings A-E with their table, FCN32s and DeepLabv3 (with masks over epochs) run folders."""
    from dlcv.analysis.masks_over_epochs import mask_figures
    from dlcv.data.masks import write_mask

    timing = {"epoch_time_s": 2.0, "data_time_s": 0.1, "images_per_s": 50.0}
    byol_rows = [{"epoch": 0, "step": 0, "knn/acc": 0.10}] + [
        {"epoch": e, "step": 15 * e, "knn/acc": 0.10 + 0.03 * e, "train/collapse_std": 0.07, "train/loss": 2 - 0.1 * e,
         "train/tau": 0.996 + 0.001 * e, "lr": 1.0 / e, **timing} for e in (1, 2, 3, 4)]
    from dlcv.schedules import plot_schedules

    byol = _write_run(runs / "p2_byol", "configs/demo/p2_byol.yaml", [], byol_rows,
                      {"task": "byol", "images": 1000, "proj_dim": 128, "knn_random_init": 0.1, "knn_final": 0.22,
                       "final_collapse_std": 0.07, "collapse_std_healthy": 0.088})
    plot_schedules(byol / "figures" / "schedules.png", "p2_byol", lr=np.linspace(1, 0, 60),
                   tau=np.linspace(0.996, 1, 60))
    from dlcv.bench.byol_learns import SETUPS, setup_dict, write_probe  # the demo stage's probe artefacts

    curve = [{"step": k, "loss": None if k == 0 else 2.0 - k / 500, "seconds": k * 0.6, "retrieval": 0.08 + k / 1e4,
              "knn": 0.14 + k / 5000} for k in (0, 250, 500)]
    write_probe(byol, "no_blur", {"setup": setup_dict(SETUPS["no_blur"]), "curve": curve, "chance": 1 / 72,
                                  "retrieval_chance": 1 / 256})
    accs = {"A": 0.30, "B": 0.55, "C": 0.42, "D": 0.47, "E": 0.20}
    table = []
    for name, acc in accs.items():
        rows = [{"epoch": e, "step": 12 * e, "train/loss": 3 - 0.5 * e, "train/acc": acc * e / 4, "val/loss": 3 - 0.4 * e,
                 "val/acc": acc * e / 4, "lr": 0.001, **timing} for e in (1, 2, 3, 4)]
        freeze = "backbone" if name in "DE" else "none"
        _write_run(runs / f"p2_setting_{name}", "configs/demo/p2_finetune.yaml", [f"model.freeze={freeze}"], rows,
                   {"val_acc": acc, "best_epoch": 4, "params": 11_000_000,
                    "trainable_params": 33_345 if freeze == "backbone" else 11_000_000, "pretrained": "random init"})
        table.append({"setting": name, "our val acc": round(100 * acc, 2), "run": str(runs / f"p2_setting_{name}")})
    (runs / "p2_settings").mkdir()
    (runs / "p2_settings" / "summary.json").write_text(json.dumps({"rows": table}))  # as `dlcv p2-settings`
    names = ["urban", "agriculture", "rangeland", "forest", "water", "barren"]
    for folder, config, miou in (("p3_a_fcn32s", "configs/demo/p3_a_fcn32s.yaml", 0.31),
                                 ("p3_b_deeplabv3", "configs/demo/p3_b_deeplabv3.yaml", 0.52)):
        rows = [{"epoch": e, "step": 2 * e, "train/loss": 1.5 / e, "val/loss": 1.6 / e, "val/miou": miou * e / 3,
                 "val/pixel_acc": 0.5, "lr": 1e-3, **{f"val/iou_{n}": miou for n in names}, **timing} for e in (1, 2, 3)]
        run = _write_run(runs / folder, config, ["trainer.epochs=3"], rows,
                         {"val_miou": miou, "best_epoch": 3, "params": 1_000_000, "pretrained": "random init",
                          "val_iou": {n: miou for n in names}, "absent_classes": []})
        rng = np.random.default_rng(0)
        for i in ("0001", "0004"):
            masks = run / "masks"
            (masks / "inputs").mkdir(parents=True, exist_ok=True)
            from PIL import Image

            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(masks / "inputs" / f"{i}_sat.png")
            for sub in ("gt", "epoch_001", "epoch_002", "epoch_003"):
                classes = rng.integers(0, 7, (32, 32)).astype(np.uint8)
                write_mask(masks / sub / f"{i}_mask.png", classes)
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(masks / sub / f"{i}_overlay.png")
        mask_figures(run, folder)  # figures/masks_over_epochs*.png, as the job draws them after fit
    write_architectures(runs)


def full_runs(tmp_path_factory, demo_root: Path) -> Path:
    """The P1 runs plus the P2/P3 folders (a full report)."""
    if "full" not in _RUNS:
        runs = tmp_path_factory.mktemp("report_full_runs")
        for run in p1_runs(tmp_path_factory, demo_root).iterdir():
            (runs / run.name).symlink_to(run, target_is_directory=True)
        write_p2_p3_runs(runs)
        _RUNS["full"] = runs
    return _RUNS["full"]


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_root):
    return p1_runs(tmp_path_factory, demo_root)


@pytest.fixture(scope="module")
def p1_report(runs, tmp_path_factory):
    from dlcv.report.build import build_report

    out = tmp_path_factory.mktemp("report_p1")
    result = build_report([runs], out, pdf=False)
    return result, (out / "report.md").read_text(), (out / "index.html").read_text()


def _section(md: str, start: str, end: str | None) -> str:
    i = md.index(f"## {start}")
    j = md.index(f"## {end}", i) if end else len(md)
    return md[i:j]


# ------------------------------------------------------------------------------------ tests
def test_writes_html_markdown_and_assets(p1_report):
    result, md, html = p1_report
    assert result.errors == []
    assert result.html.is_file() and result.markdown.is_file()
    assert result.pdf is None and "--no-pdf" in result.pdf_note
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) >= 6
    for src in srcs:
        assert src.startswith("assets/") and (result.out / src).is_file(), src
    for src in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (result.out / src).is_file(), src
    # offline: no remote scripts, styles, fonts or images
    assert not re.search(r'(src|href)="(https?:)?//', html) and "@import" not in html and "<script" not in html


def test_p1_sections_demo_labels_and_numbers(p1_report, runs):
    _, md, _ = p1_report
    for title in P1_SECTIONS:
        assert f" {title}\n" in md, title
    assert "DEMO DATA: THESE ARE NOT RESULTS ON THE REAL TASK" in md
    p1 = _section(md, "1 Problem 1", "2 Problem 2")
    assert p1.count("`[demo data]`") >= 5  # every table/figure of demo runs carries the tag
    acc = json.loads((runs / "p1_seed_a" / "summary.json").read_text())["val_acc"]
    assert f"{100 * acc:.2f}%" in p1  # the number comes from the run folder
    assert "30.7%" in p1 and "90.2%" in p1 and "74.96%" in p1  # the seed's references beside ours
    assert "Source: `p1_seed_a`, `p1_b` (summary.json)" in p1  # each table names its runs and files ...
    appendix = _section(md, "4 Appendix", None)
    assert "dlcv train configs/demo/p1_seed_a.yaml" in appendix  # ... and the appendix the command behind them
    assert "torchview" in p1 or "matplotlib flow" in p1  # says how the architecture was drawn
    assert "recomputed" not in md and "features/*.npz" not in md  # figures are the runs' own


def test_missing_p2_p3_are_not_available_sections(p1_report):
    _, md, _ = p1_report
    p2 = _section(md, "2 Problem 2", "3 Problem 3")
    p3 = _section(md, "3 Problem 3", "4 Appendix")
    for part, titles in ((p2, ["2.1 SSL method", "2.2 Office-Home fine-tuning"]),
                         (p3, ["3.1 Network architecture of model A", "3.3 Validation mIoU", "3.4 Predicted masks"])):
        assert ": not available**" in part
        for t in titles:
            assert t in part


def test_broken_and_missing_artefacts_do_not_crash(runs, tmp_path):
    from dlcv.report.build import build_report

    broken = tmp_path / "runs"
    shutil.copytree(runs / "p1_seed_a", broken / "p1_corrupt")
    (broken / "p1_corrupt" / "epochs.csv").write_text("epoch,train/loss\n1,0.5,7,8\nnot,a,csv\n")
    (broken / "p1_corrupt" / "figures" / "architecture.json").write_text("{not json")
    for f in ("figures/pca.png", "figures/tsne.png", "eval/metrics.json", "eval/confusion.png"):
        (broken / "p1_corrupt" / f).unlink()
    shutil.copytree(runs / "p1_seed_a", broken / "p1_bad_config")
    (broken / "p1_bad_config" / "config.yaml").write_text("task: [unclosed\n")
    (broken / "p1_no_summary").mkdir()
    shutil.copy(runs / "p1_seed_a" / "config.yaml", broken / "p1_no_summary" / "config.yaml")
    result = build_report([broken], tmp_path / "out", pdf=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert result.errors == []
    assert "`p1_corrupt`: epochs.csv is unreadable (ValueError: line 2 has more cells than the header)" in md
    assert "Training curves of p1_corrupt: not available" in md
    assert "Per-class accuracy of p1_corrupt: not available" in md
    command = "`dlcv train configs/demo/p1_seed_a.yaml"
    for missing in ("figures/pca.png", "figures/tsne.png", "eval/metrics.json", "eval/confusion.png"):
        assert f"`p1_corrupt` lacks `{missing}`; {command}" in md  # the file, and the command that writes it
    assert "`p1_corrupt`: figures/architecture.json is unreadable (ValueError: not valid JSON" in md
    assert "`p1_bad_config`: config.yaml is unreadable" in md
    assert "`p1_no_summary`: summary.json is missing" in md
    assert "`p1_no_summary` lacks `summary.json`" in md


def test_without_chromium_html_and_markdown_are_still_written(runs, tmp_path, monkeypatch, capsys):
    from dlcv.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.pdf").write_bytes(b"%PDF- an old build")
    monkeypatch.setenv("DLCV_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert main(["report", str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Chromium is not installed" in err and "apt-get install chromium" in err
    assert (out / "index.html").is_file() and (out / "report.md").is_file()
    assert not (out / "report.pdf").exists()  # a previous build's PDF never looks current


def test_architecture_without_graphviz_is_a_generated_flow(runs, tmp_path, monkeypatch):
    import torch

    from dlcv.analysis import architecture
    from dlcv.runfolder import read_config, read_json
    from dlcv.tasks.classification import ClassificationTask

    monkeypatch.setattr(architecture, "dot_available", lambda: False)
    with torch.device("meta"):
        model = ClassificationTask(read_config(runs / "p1_b"), inference=True).model
    info = architecture.write_architecture(model, 32, tmp_path)
    assert info == read_json(tmp_path / architecture.ARCH_JSON) and info["figure"] == architecture.ARCH_PNG
    assert (tmp_path / architecture.ARCH_PNG).stat().st_size > 10_000
    assert "matplotlib flow" in info["method"] and "Graphviz `dot` is not installed" in info["method"]
    assert info["params"] > 3_000_000 and info["layers"][-1][1].startswith("Linear") and info["layers"][-1][2] == "50"


def test_escapes_html_in_names(runs, tmp_path):
    from dlcv.report.build import build_report

    shutil.copytree(runs / "p1_seed_a", tmp_path / "runs" / "p1_<b>x&y")
    build_report([tmp_path / "runs"], tmp_path / "out", pdf=False)
    html = (tmp_path / "out" / "index.html").read_text()
    assert "p1_<b>x" not in html and "p1_&lt;b&gt;x&amp;y" in html


ALL_SECTIONS = P1_SECTIONS + [
    "2 Problem 2: Self-supervised pre-training (BYOL) and Office-Home fine-tuning",
    "2.1 SSL method: BYOL pre-training details", "2.2 Office-Home fine-tuning in settings A–E",
    "2.3 Training curves and throughput", "3 Problem 3: Semantic segmentation of satellite images (7 classes)",
    "3.1 Network architecture of model A (VGG16-FCN32s)", "3.2 Model B (DeepLabv3) and how it differs from FCN32s",
    "3.3 Validation mIoU of A and B", "3.4 Predicted masks over training (model B)",
    "3.5 Training curves and throughput", "4 Appendix: runs, commands and build notes",
    "4.1 Every run in this report", "4.2 Build notes"]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, demo_root):
    from dlcv.report.build import build_report

    out = tmp_path_factory.mktemp("report_full")
    result = build_report([full_runs(tmp_path_factory, demo_root)], out, pdf=False)
    return result, (out / "report.md").read_text(), (out / "index.html").read_text()


def test_every_assignment_section_on_a_demo_like_run_set(full_report):
    from dlcv.report.render import slug

    result, md, html = full_report
    assert result.errors == []
    headings = [line.split(" ", 1)[1] for line in md.splitlines() if re.match(r"#{2,3} \d", line)]
    assert headings == ALL_SECTIONS  # every question, in the assignment's order, nothing else
    for title in ALL_SECTIONS:  # the same headings in the page, with the ids the contents link to
        assert f'id="{slug(title)}"' in html and f"(#{slug(title)})" in md
    assert ": not available**" not in md  # a complete run set: every artefact is there


def test_p2_p3_sections_from_run_folders(full_report):
    _, md, _ = full_report
    p2 = _section(md, "2 Problem 2", "3 Problem 3")
    assert "SSL implementation details of `p2_byol`" in p2 and "LARS" in p2
    assert "assets/p2_byol_schedules.png" in p2  # the run's own schedule figure, not recomputed
    assert "kNN accuracy 10.0% at random init, 22.0% after the last epoch" in p2
    assert "identity kNN goes from 14.0% at random init to 24.0% (+10.0 points; chance 1.4%)" in p2
    assert "assets/p2_byol_byol_learns.png" in p2 and "among 256) from 8.0% to 13.0%" in p2
    assert "| **B** | supervised pretrain_model_SL.pt | backbone + classifier | 55.00% | 59.5% |" in p2
    # the discussion states the numbers: B 55 > D 47 > C 42 > A 30 > E 20
    assert "Ranking: B (55.0%) > D (47.0%) > C (42.0%) > A (30.0%) > E (20.0%)." in p2
    assert "C − E (BYOL start: fine-tuned minus frozen): +22.0 points." in p2
    assert "the settings differ only in `model.pretrained` and `model.freeze`" in p2
    p3 = _section(md, "3 Problem 3", "4 Appendix")
    assert "| **B** | `p3_b_deeplabv3` | 52.00% |" in p3 and "56.4%" in p3 and "72.9%" in p3
    assert "p3_b_deeplabv3_masks_overlay" in p3 and "at epochs 1, 2, 3" in p3
    assert "B (`p3_b_deeplabv3`, 52.00%) minus A (`p3_a_fcn32s`, 31.00%): +21.0 points mIoU." in p3


def test_discussion_states_numbers_not_verdicts():
    from dlcv.report.sections_p2 import discussion

    text = " ".join(discussion({"A": 0.5, "B": 0.4, "C": 0.402, "D": 0.6, "E": 0.1}, demo=False))
    assert "Ranking: D (60.0%) > A (50.0%) > C (40.2%) > B (40.0%) > E (10.0%)." in text
    assert "B − D (supervised start: fine-tuned minus frozen): -20.0 points." in text
    assert "B − C (fine-tuned: supervised minus BYOL start): -0.2 points." in text
    assert "C − A (fine-tuned: BYOL start minus random init): -9.8 points." in text
    assert "Setting C: 40.2%; the course baselines are 36% / 40%" in text
    for verdict in ("wins", "beats", "about equal", "better", "worse", "above", "below"):
        assert verdict not in text
    assert discussion({}, demo=True) == []
    assert "D − E" not in " ".join(discussion({"D": 0.5}, demo=True))  # only pairs whose settings ran


def test_cli(runs, tmp_path, capsys):
    from dlcv.cli import main

    out = tmp_path / "out"
    assert main(["report", str(runs), "--out", str(out), "--no-pdf"]) == 0
    assert (out / "index.html").is_file() and "report built from 2 run folder(s)" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
