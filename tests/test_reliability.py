"""Nothing lost under kills and bad numbers: atomic writes, exact resume after SIGKILL, NaN stops."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dlcv.errors import CheckpointError
from dlcv.io import atomic_path, load_torch, save_torch
from tests.helpers import REPO, run_dlcv, write_digits_p1


def test_atomic_write_keeps_the_previous_file_when_interrupted(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_torch({"v": torch.tensor(1)}, path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt  # a kill in the middle of the write
    assert load_torch(path)["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": subprocess.CompletedProcess(args=[], returncode=0)}, path)
    with pytest.raises(CheckpointError, match="arbitrary pickle"):
        load_torch(path)
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_torch(tmp_path / "trunc.pt")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    root = write_digits_p1(tmp_path / "digits")
    args = ["configs/p1/seed_a.yaml", f"data.root={root}", "trainer.epochs=4", "trainer.progress=false",
            "features.enabled=false", "data.batch_size=16"]
    run_dlcv("train", *args, f"run.dir={tmp_path}/full")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dlcv", "train", *args, f"run.dir={tmp_path}/killed"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "killed" / "seed_a" / "log.txt"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.is_file() and "epoch 2 " in log.read_text()):
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "epoch 4 " not in log.read_text(), "the run finished before it could be killed"
    run_dlcv("train", *args, f"run.dir={tmp_path}/killed", "--resume")
    full = torch.load(tmp_path / "full/seed_a/checkpoints/last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "killed/seed_a/checkpoints/last.ckpt", weights_only=True)
    assert full["global_step"] == resumed["global_step"]
    for k, v in full["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
    strip = lambda text: [l.split(" | epoch_time_s")[0] for l in text.splitlines()]  # noqa: E731
    assert strip((tmp_path / "full/seed_a/log.txt").read_text()) == strip(log.read_text())


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    root = write_digits_p1(tmp_path / "digits")
    proc = run_dlcv("train", "configs/p1/seed_a.yaml", f"data.root={root}", f"run.dir={tmp_path}",
                    "trainer.epochs=3", "optim.lr=1e12", "trainer.progress=false", "features.enabled=false",
                    check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "non-finite loss" in proc.stderr and "step" in proc.stderr
    last = tmp_path / "seed_a" / "checkpoints" / "last.ckpt"
    if last.exists():  # whatever was saved before the blow-up is a good, loadable checkpoint
        state = load_torch(last)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not (tmp_path / "seed_a" / "model.pt").exists()
