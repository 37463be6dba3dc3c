"""Reference numbers on the REAL assignment data (SPEC.md; the seed report and the course), in percent.
The report shows them beside ours as "seed", never as our results."""
from __future__ import annotations

P1 = {
    "A": {"seed": 30.7, "best_student": 74.96},  # best from-scratch result students reported
    "B": {"seed": 90.2, "best_student": None},
    "baselines": (75.0, 86.0),
}

P2_SETTINGS = {  # setting -> (backbone start, what trains, seed, best student)
    "A": ("random init", "backbone + classifier", 41.0, 52.7),
    "B": ("supervised pretrain_model_SL.pt", "backbone + classifier", 59.5, 59.5),
    "C": ("own BYOL backbone", "backbone + classifier", 49.6, 55.1),
    "D": ("supervised pretrain_model_SL.pt", "classifier only (backbone frozen)", 53.9, 53.9),
    "E": ("own BYOL backbone", "classifier only (backbone frozen)", 34.0, 43.8),
}
P2_C_BASELINES = (36.0, 40.0)

P3 = {
    "A": {"seed": 56.4, "best_student": 72.5},
    "B": {"seed": 72.9, "best_student": 76.0},
    "baselines": (69.0, 73.0),
}
P3_MASK_IDS = ("0013", "0062", "0104")  # the validation images the assignment asks about
