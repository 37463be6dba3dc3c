"""Numbers and choices of the assignment itself, in one place: the seed report's and the best
students' results on the REAL data (SPEC.md), the course's baselines, and the validation images
the assignment asks about. The report shows the numbers beside ours as references, never as ours.
Percent throughout."""
from __future__ import annotations

P1 = {
    "A": {"seed": 30.7, "best_student": 74.96},  # best from-scratch result students reported
    "B": {"seed": 90.2, "best_student": None},
    "baselines": (75.0, 86.0),
}

P2 = {  # setting (dlcv.jobs.p2_settings.SETTINGS says what each one is) -> its references
    "A": {"seed": 41.0, "best_student": 52.7},
    "B": {"seed": 59.5, "best_student": 59.5},
    "C": {"seed": 49.6, "best_student": 55.1},
    "D": {"seed": 53.9, "best_student": 53.9},
    "E": {"seed": 34.0, "best_student": 43.8},
}
P2_C_BASELINES = (36.0, 40.0)

P3 = {
    "A": {"seed": 56.4, "best_student": 72.5},
    "B": {"seed": 72.9, "best_student": 76.0},
    "baselines": (69.0, 73.0),
}
P3_MASK_IDS = ("0013", "0062", "0104")  # the validation images whose masks the assignment asks for
