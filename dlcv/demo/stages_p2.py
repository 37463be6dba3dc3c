"""The P2 part of `dlcv demo`: a stand-in for pretrain_model_SL.pt, BYOL pre-training, the five
fine-tuning settings A-E with their table, then hw1_2.sh's job on the Office test stand-in.

CPU scale (about 3 minutes on 2 cores): ResNet-18 instead of ResNet-50 and 32 px instead of 128
(configs/demo/p2_*.yaml). The course's supervised checkpoint is not available here, so a STAND-IN
is made: a torchvision ResNet-18 trained briefly, supervised, on the P1 demo images, saved in the SL
file's exact format into <data_root>/p2_data/pretrain_model_SL.pt (a demo data folder, marked
DEMO_DATA) with a note beside it saying what it is.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from dlcv.demo.stage import CONFIGS, Stage, train_demo_config
from dlcv.io import save_torch, write_text

STANDIN_NOTE = """\
DEMO STAND-IN, NOT the course's pretrain_model_SL.pt.
A torchvision resnet18 state_dict (fc 512 -> 1000 as torchvision's; rows 0..49 trained, the rest 0),
trained supervised for a few epochs on the P1 demo images by `dlcv demo` (configs/demo/p2_sl_standin.yaml,
run folder {run}). It has the SL file's format (a full torchvision state_dict with its fc layer) so that
settings B and D of the demo run exactly the code path the real file takes.
"""


def make_sl_standin(run_dir: Path, dest: Path) -> Path:
    """The stand-in run's classifier as a torchvision resnet18 state_dict with a 1000-way fc."""
    import torchvision

    from dlcv.io import load_model_file

    _, state = load_model_file(run_dir / "model.pt")
    trunk = "model.backbone.net."
    sd = {k[len(trunk):]: v for k, v in state.items() if k.startswith(trunk)}
    weight, bias = state["model.head.weight"], state["model.head.bias"]
    fc_weight = torch.zeros(1000, weight.shape[1])
    fc_bias = torch.zeros(1000)
    fc_weight[:len(weight)], fc_bias[:len(bias)] = weight, bias
    sd["fc.weight"], sd["fc.bias"] = fc_weight, fc_bias
    torchvision.models.resnet18(weights=None).load_state_dict(sd)  # strict: exactly the torchvision format
    save_torch(sd, dest)
    write_text(dest.with_name(dest.name + ".STANDIN.txt"), STANDIN_NOTE.format(run=run_dir))
    print(f"    stand-in for pretrain_model_SL.pt -> {dest}")
    return dest


def sl_standin(data_root: Path, runs: Path, fresh: bool) -> dict:
    from dlcv.demo import DemoScale, ensure_demo_data

    ensure_demo_data(data_root, DemoScale(), seed=0, problems=("p1",))  # its training images (kept if there)
    summary = train_demo_config("p2_sl_standin", data_root, runs, fresh)
    run_dir, dest = runs / "p2_sl_standin", data_root / "p2_data" / "pretrain_model_SL.pt"
    # rewritten only when the run is newer: a rewrite makes p2-settings retrain settings B and D
    if not dest.is_file() or dest.stat().st_mtime < (run_dir / "model.pt").stat().st_mtime:
        make_sl_standin(run_dir, dest)
    return {"p1_val_acc": summary.get("val_acc"), "file": str(dest)}


def settings(data_root: Path, runs: Path, fresh: bool) -> dict:
    from dlcv.jobs.p2_settings import run_settings

    overrides = [f"data.root={data_root}", f"run.dir={runs}"]
    return run_settings(CONFIGS / "p2_finetune.yaml", overrides, byol=runs / "p2_byol" / "backbone.pt",
                        overwrite=fresh, retrain_stale=True,
                        command=["dlcv", "p2-settings", "configs/demo/p2_finetune.yaml", *overrides])


def score_test(data_root: Path, runs: Path, out: Path) -> dict:
    """hw1_2.sh's job (setting C's model) on the Office test stand-in, scored against its truth."""
    from dlcv.graded.p2 import predict

    office = data_root / "p2_data" / "office"
    model = runs / "p2_setting_C" / "model.pt"
    pred_csv = out / "predictions" / "p2_test_pred.csv"
    pred_csv.parent.mkdir(parents=True, exist_ok=True)
    predict(model, office / "test.csv", office / "test", pred_csv)
    with open(pred_csv, newline="") as fh:
        pred = {r["filename"]: r["label"] for r in csv.DictReader(fh)}
    with open(office / "test_gt.csv", newline="") as fh:
        truth = {r["filename"]: r["label"] for r in csv.DictReader(fh)}
    acc = sum(pred.get(k) == v for k, v in truth.items()) / len(truth)
    print(f"    Office test stand-in, setting C: {acc:.2%} of {len(truth)} images ({model})")
    return {"p2_test_accuracy": acc, "model": str(model), "predictions": str(pred_csv)}


BYOL_LEARNS_SETUP = "no_blur"  # dlcv.bench.byol_learns.SETUPS: the paper's views less the blur, ~6 min


def byol_learns(runs: Path, fresh: bool) -> dict:
    """Does our BYOL learn? The bench's probe (BYOL on object-identity images, held-out kNN and view
    retrieval against random init), written into the demo BYOL run folder for the report. The demo's
    own BYOL run cannot show it: 3 epochs on scenes whose classes a random network separates by colour."""
    from dlcv.bench.byol_learns import SETUPS, run_probe, setup_dict, write_probe
    from dlcv.runfolder import BYOL_LEARNS, read_json

    run_dir, setup = runs / "p2_byol", SETUPS[BYOL_LEARNS_SETUP]
    done = run_dir / BYOL_LEARNS
    if not fresh and done.is_file():
        result = read_json(done).get(BYOL_LEARNS_SETUP)
        if result and result.get("setup") == json.loads(json.dumps(setup_dict(setup))):
            print(f"    reusing {done} (same setup; --fresh reruns)")
            return _headline(result)
    result = run_probe(setup, lambda m: print("    " + m, flush=True))
    write_probe(run_dir, BYOL_LEARNS_SETUP, result)
    return _headline(result)


def _headline(result: dict) -> dict:
    start, end = result["curve"][0], result["curve"][-1]
    return {"knn_random_init": start["knn"], "knn_after": end["knn"], "steps": end["step"],
            "retrieval_random_init": start["retrieval"], "retrieval_after": end["retrieval"]}


def stages(data_root: Path, runs: Path, out: Path, fresh: bool) -> list[Stage]:
    return [
        Stage("P2 stand-in for pretrain_model_SL.pt (supervised ResNet-18 on P1 demo images)",
              lambda: sl_standin(data_root, runs, fresh)),
        Stage("P2 BYOL pre-training (ResNet-18, 32 px views, random init)",
              lambda: train_demo_config("p2_byol", data_root, runs, fresh)),
        Stage("P2: does BYOL learn? ResNet-18 on object identities, kNN against random init",
              lambda: byol_learns(runs, fresh)),
        Stage("P2 fine-tuning settings A-E and the A-E table", lambda: settings(data_root, runs, fresh)),
        Stage("P2 graded predictions (hw1_2.sh) on the test stand-in", lambda: score_test(data_root, runs, out)),
    ]
