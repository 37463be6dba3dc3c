"""Seeds derived from (run seed, epoch or step, rank): randomness that a resumed run replays exactly.

Nothing relies on the global RNG carrying over between steps: the sampler shuffles with
(seed, epoch), augmentation draws from a generator seeded with (seed, step, rank), and the global
RNG (dropout, stochastic depth) is reseeded before every training step. So a run resumed from a
checkpoint continues bit-for-bit like the uninterrupted one (on deterministic kernels).
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (nearby inputs give unrelated seeds)."""
    digest = hashlib.blake2b(",".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def seed_global(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator_for(device: torch.device, *parts: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g
