"""Atomic writes and safe checkpoint loading: a kill at any moment leaves the previous file intact.

torch is imported inside the functions that need it: the text writers serve NumPy-only commands
(`dlcv score-masks --out`) that must not pay for importing torch."""
from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterator

from dlcv.errors import CheckpointError


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The rename is atomic on POSIX, so readers see either the old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with `weights_only=True`; refuse (clearly) one that needs arbitrary pickle."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: it needs arbitrary pickle code to load (only tensors, numbers, strings, "
            f"lists and dicts are accepted). Re-save its state_dict with torch.save(model.state_dict(), ...). "
            f"Detail: {str(exc).splitlines()[0]}") from exc
    # arbitrary bytes make the unpickler fail in many ways (KeyError for an unknown opcode, ...)
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): {exc}") from exc


def export_model(run_dir: str | Path, config: dict, state_dict: dict, extra: dict | None = None) -> Path:
    """`model.pt`: only what prediction needs (config + model weights), loadable weights_only."""
    import torch

    path = Path(run_dir) / "model.pt"
    with atomic_path(path) as tmp:
        torch.save({"config": config, "state_dict": state_dict, **(extra or {})}, tmp)
    return path


def load_model_file(path: str | Path) -> tuple[dict, dict]:
    """(config dict, model state_dict) from an exported model.pt or a Lightning .ckpt."""
    obj = load_torch(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a dlcv checkpoint")
    if "config" in obj and "state_dict" in obj:
        return obj["config"], obj["state_dict"]
    hp = obj.get("hyper_parameters", {})
    if "config" in hp and "state_dict" in obj:
        return hp["config"], obj["state_dict"]
    raise CheckpointError(f"{path}: not a dlcv checkpoint (no config/state_dict inside)")


def load_weights(module, state_dict: dict, source: str) -> None:
    """Load a checkpoint's weights into the model its config describes; a mismatch (another
    architecture, a hand-assembled file) is a CheckpointError listing the missing / unexpected /
    wrong-shape keys in a few lines, not torch's wall of keys."""
    from dlcv.errors import WeightsError
    from dlcv.models.weights import load_matching

    try:
        load_matching(module, state_dict, f"{source}: its weights")
    except WeightsError as exc:
        raise CheckpointError(str(exc)) from None
