"""`dlcv check`, the pre-submission check: the shell-word rules, the checkpoint sources, an end-to-end
check of the graded scripts on the demo data with tiny exported checkpoints, bad input as failed
rows (never a traceback), and the course-environment import guard active in the scripts' runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dlcv.check.core import run_check
from dlcv.check.rows import FAIL, PASS, SKIP, WARN
from dlcv.check.shell import check_script
from dlcv.check.sources import source_rows
from dlcv.graded.fetch import SOURCES_NAME, sha256_of
from tests.helpers import REPO, run_dlcv

# -- shell-word rules ------------------------------------------------------------------------------

FINE = [
    "python3 x.py /data/farm/rm_cache",
    "# rm in a comment\npython3 x.py",
    "python3 x.py  # cd /tmp && rm -rf /",
    "python3 x.py 'rm -rf /' \"cd x\"",
    "echo rm cp mv mkdir",
    'here="$(dirname "$0")"\nPYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded predict p1 a b',
    "python3 x.py > out.log 2>&1",
    "if [ -f x ]; then python3 x.py; fi",
]
BAD = [
    ("$(rm -r x)", "`rm`"),
    ('echo "$(rm -r x)"', "`rm`"),
    ("echo `mv a b`", "`mv`"),
    ("cd /x && python3 x.py", "`cd`"),
    ("python3 x.py || mkdir y", "`mkdir`"),
    ("(cp a b)", "`cp`"),
    ("for f in a; do rm $f; done", "`rm`"),
    ("python3 x.py \\\n  ; rm y", "`rm`"),
    ("CUDA_VISIBLE_DEVICES=0 python3 x.py", "CUDA_VISIBLE_DEVICES"),
    ("export CUDA_VISIBLE_DEVICES=1", "CUDA_VISIBLE_DEVICES"),
    ("env CUDA_VISIBLE_DEVICES=1 python3 x.py", "CUDA_VISIBLE_DEVICES"),
    ("export PATH=/opt/py/bin:$PATH", "PATH"),
    ("python x.py", "`python`"),
    ("/usr/bin/python3 x.py", "by name"),
    ("python3 -m pip install timm", "pip"),
    ("pip install timm", "`pip`"),
    ("sudo python3 x.py", "`sudo`"),
    ("conda activate dlcv", "`conda`"),
    ("apt-get install -y x", "`apt-get`"),
    ("chmod +x a.sh", "`chmod`"),
    ("source venv/bin/activate", "`source`"),
    ("eval 'rm x'", "`rm`"),
    ("bash -c 'cd /; python3 x.py'", "`cd`"),
    ("echo 'unclosed", "parsed"),
]


@pytest.mark.parametrize("body", FINE)
def test_shell_rules_accept(body):
    assert check_script(body) == []


@pytest.mark.parametrize("body, word", BAD)
def test_shell_rules_refuse(body, word):
    found = check_script(body)
    assert len(found) == 1 and word in found[0].message, found


def test_shell_rules_line_numbers_and_the_repo_scripts():
    assert [v.line for v in check_script("python3 a.py\n# rm\npython3 b.py\ncd x\n")] == [4]
    for script in ("hw1_1.sh", "hw1_2.sh", "hw1_3.sh", "hw1_download_ckpt.sh"):
        assert check_script((REPO / script).read_text()) == [], script


# -- checkpoint sources ----------------------------------------------------------------------------

def test_checkpoint_source_rows(tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    (tmp_path / "local.pt").write_bytes(b"x")
    (tmp_path / SOURCES_NAME).write_text(
        f"# comment\np1 https://example.com/p1.pt {sha256_of(ckpt)}\np2 -\np3 missing.pt\n")
    rows = source_rows(tmp_path, ["p1", "p2", "p3"], {p: ckpt for p in ("p1", "p2", "p3")}, demo=False)
    assert [r.result for r in rows] == [PASS, FAIL, FAIL]
    assert "sha256 matches" in rows[0].note and "missing.pt does not exist" in rows[2].note
    assert [r.result for r in source_rows(tmp_path, ["p2"], {"p2": ckpt}, demo=True)] == [WARN]

    (tmp_path / SOURCES_NAME).write_text(f"p1 https://x/p1.pt {'0' * 64}\np2 local.pt\n")
    rows = source_rows(tmp_path, ["p1", "p2", "p3"], {p: ckpt for p in ("p1", "p2", "p3")}, demo=False)
    assert [r.result for r in rows] == [WARN, WARN, FAIL]
    assert "not that of the checkpoint tested here" in rows[0].note and "local file" in rows[1].note

    (tmp_path / SOURCES_NAME).unlink()
    (row,) = source_rows(tmp_path, ["p1"], {"p1": ckpt}, demo=False)
    assert row.result == FAIL and "not found" in row.note


# -- the graded scripts, end to end ----------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny untrained model.pt files of the right kinds: P1 seed A, P2 ResNet-18 (the demo's setting-C
    config), P3 DeepLabv3 (run at the demo data's 64 px)."""
    from dlcv.config import load_config, to_dict
    from dlcv.io import export_model
    from dlcv.tasks.classification import ClassificationTask
    from dlcv.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("check_ckpts")
    configs = {"p1": (ClassificationTask, load_config(REPO / "configs/demo/p1_seed_a.yaml")),
               "p2": (ClassificationTask, load_config(REPO / "configs/demo/p2_finetune.yaml", ["model.pretrained=none"])),
               "p3": (SegmentationTask, load_config(overrides=["task=segment", "model.name=deeplabv3_resnet50"]))}
    return {p: export_model(root / p, to_dict(cfg), task(to_dict(cfg)).state_dict())
            for p, (task, cfg) in configs.items()}


def _ckpt_options(checkpoints: dict) -> list[str]:
    return [a for p, path in checkpoints.items() for a in (f"--{p}-ckpt", str(path))]


def test_check_end_to_end_on_demo_data(demo_root, checkpoints, tmp_path):
    out = tmp_path / "check out"
    proc = run_dlcv("check", "--data", str(demo_root), "--out", str(out), *_ckpt_options(checkpoints), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "DEMO" in proc.stdout
    report = json.loads((out / "check.json").read_text())
    assert report["passed"] and report["demo"] and report["device"].startswith(("cpu (", "cuda:"))
    results = {r["check"]: r["result"] for r in report["rows"]}
    for script in ("hw1_1.sh", "hw1_2.sh", "hw1_3.sh"):
        assert results[f"{script} rules"] == results[f"{script} run"] == results[f"{script} output"] == PASS
        assert results[f"{script} time"] in (PASS, WARN)  # P3: timed on 64 px images, a warning
    assert results["hw1_download_ckpt.sh rules"] == results["hw1_data"] == PASS
    # demo data: no uploaded sources, untrained models: warnings, labelled as demo, not failures
    for p in ("p1", "p2", "p3"):
        assert results[f"{p} source in {SOURCES_NAME}"] == WARN and results[f"{p} checkpoint"] == PASS
    assert {results["P1 accuracy"], results["P2 accuracy (setting C)"], results["P3 mIoU (official)"]} <= {PASS, WARN}
    rows = {r["check"]: r for r in report["rows"]}
    assert rows["hw1_1.sh output"]["figure"] == "150 rows for 150 images"
    assert rows["hw1_3.sh output"]["figure"] == "6/6 masks; inputs 64x64"
    assert "512x512" in rows["hw1_3.sh time"]["note"]
    for line in ("hw1_2.sh output", "P1 accuracy", "hw1_3.sh time"):  # the table has the same rows
        assert any(l.startswith(line) and rows[line]["result"] in l for l in proc.stdout.splitlines())


def _fake_repo(root: Path, scripts: dict[str, str]) -> Path:
    root.mkdir()
    for name in ("hw1_1.sh", "hw1_2.sh", "hw1_3.sh", "hw1_download_ckpt.sh", SOURCES_NAME):
        shutil.copyfile(REPO / name, root / name)
    for name, body in scripts.items():
        (root / name).write_text("#!/bin/bash\n" + body + "\n")
    return root


def test_bad_input_is_failed_rows_without_a_traceback(tmp_path, capsys):
    from dlcv.cli import main

    code = main(["check", "--data", str(tmp_path / "no hw1_data"), "--repo", str(REPO), "--out", str(tmp_path / "o"),
                 "--p1-ckpt", str(tmp_path / "none.pt"), "--problems", "p1"])
    text = capsys.readouterr().out
    assert code == 1
    rows = {r["check"]: r for r in json.loads((tmp_path / "o" / "check.json").read_text())["rows"]}
    assert rows["hw1_data"]["result"] == FAIL and "--data" in rows["hw1_data"]["note"]
    assert rows["p1 checkpoint"]["result"] == FAIL and "bash hw1_download_ckpt.sh" in rows["p1 checkpoint"]["note"]
    assert rows["hw1_1.sh run"]["result"] == SKIP
    assert "none.pt" in text and "FAILED" in text


def test_crashing_and_hanging_scripts_are_failed_rows(demo_root, tmp_path):
    repo = _fake_repo(tmp_path / "repo", {
        "hw1_1.sh": "python3 -c \"import sys; print('error: cannot read the model', file=sys.stderr); sys.exit(2)\"",
        "hw1_2.sh": "python3 -c 'import time; time.sleep(60)'",
        "hw1_3.sh": "cd /tmp\npython3 -c 'pass'",
    })
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"anything")
    rows, _ = run_check(repo, demo_root, tmp_path / "out", {p: ckpt for p in ("p1", "p2", "p3")},
                        problems=("p1", "p2"), timeout=3)
    by = {r.check: r for r in rows}
    assert by["hw1_1.sh run"].result == FAIL and "exit status 2: error: cannot read the model" in by["hw1_1.sh run"].note
    assert by["hw1_2.sh run"].result == FAIL and "did not finish within 3 s (killed)" in by["hw1_2.sh run"].note
    assert by["hw1_3.sh rules"].result == FAIL and "line 2: `cd`" in by["hw1_3.sh rules"].note
    assert "hw1_1.sh output" not in by  # nothing to check after a failed run


FAKE_PREDICTOR = """
import csv, sys
from pathlib import Path
import numpy as np
from PIL import Image
problem, args = sys.argv[1], sys.argv[2:]
if problem == "p1":  # wrong header
    Path(args[1]).write_text("image_id,label\\n" + "".join(f"{p.name},0\\n" for p in Path(args[0]).iterdir()))
elif problem == "p2":  # the CSV's rows in reverse order, one label out of range
    rows = list(csv.reader(open(args[0])))[1:][::-1]
    Path(args[2]).write_text("id,filename,label\\n" + "".join(f"{i},{f},{65 if k == 0 else 1}\\n"
                                                                for k, (i, f, _) in enumerate(rows)))
else:  # red masks of the wrong size, one missing
    Path(args[1]).mkdir()
    for p in sorted(Path(args[0]).glob("*_sat.jpg"))[1:]:
        Image.fromarray(np.full((8, 8, 3), (255, 0, 0), np.uint8)).save(Path(args[1]) / p.name.replace("_sat.jpg", "_mask.png"))
"""


def test_wrong_outputs_are_failed_rows(demo_root, tmp_path):
    scripts = {f"hw1_{n}.sh": f'python3 "$(dirname "$0")/fake.py" p{n} "$@"' for n in (1, 2, 3)}
    repo = _fake_repo(tmp_path / "repo", scripts)
    (repo / "fake.py").write_text(FAKE_PREDICTOR)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"anything")
    rows, _ = run_check(repo, demo_root, tmp_path / "out", {p: ckpt for p in ("p1", "p2", "p3")}, timeout=60)
    by = {r.check: r for r in rows}
    assert all(by[f"hw1_{n}.sh run"].result == PASS for n in (1, 2, 3))
    assert by["hw1_1.sh output"].result == FAIL and "header must be exactly filename,label" in by["hw1_1.sh output"].note
    note = by["hw1_2.sh output"].note
    assert by["hw1_2.sh output"].result == FAIL and "in its order" in note and "not an integer 0..64" in note
    note = by["hw1_3.sh output"].note
    assert by["hw1_3.sh output"].result == FAIL and "1 mask(s) missing: 0000_mask.png" in note and "8x8" in note
    assert by["P1 accuracy"].result == SKIP and by["hw1_3.sh time"].result in (PASS, WARN)


def test_the_import_guard_is_active_in_the_scripts_runs(demo_root, checkpoints, tmp_path):
    """A repo whose graded P1 module imports a package the course's environment lacks fails the run
    row with the guard's message, although the package is installed here."""
    pytest.importorskip("omegaconf")
    repo = _fake_repo(tmp_path / "repo", {})
    shutil.copytree(REPO / "dlcv", repo / "dlcv", ignore=shutil.ignore_patterns("__pycache__"))
    p1 = repo / "dlcv" / "graded" / "p1.py"
    p1.write_text(p1.read_text().replace("import csv\n", "import csv\nimport omegaconf\n", 1))
    rows, _ = run_check(repo, demo_root, tmp_path / "out", checkpoints, problems=("p1",))
    (run,) = [r for r in rows if r.check == "hw1_1.sh run"]
    assert run.result == FAIL
    assert "'omegaconf' is not in the course's inference environment" in run.note and "dlcv.graded.p1" in run.note
