"""The course's inference environment as an import guard (standard library only).

The graders run hw1_*.sh where only these packages are installed (SPEC "Graded inference
environment"): torch, torchvision, numpy, Pillow, scipy, matplotlib, imageio, pandas, PyYAML, tqdm
and gdown. `install()` makes any import of another package FROM dlcv's own code fail with
ImportError, as it would there; what the allowed packages import themselves (torch's sympy,
jinja2, ...) stays allowed, since the graders' install brings those along.

Used two ways: the tests and `dlcv check` start the graded scripts with `sitecustomize_source()`
in a folder on PYTHONPATH (so the guard is active before anything is imported, independent of the
code under test), and `python -c` helpers can call `install()` directly.
"""
from __future__ import annotations

import sys

# import names of the course's packages (Pillow is PIL, PyYAML is yaml)
COURSE_PACKAGES = frozenset({"torch", "torchvision", "numpy", "PIL", "scipy", "matplotlib", "imageio", "pandas",
                             "yaml", "tqdm", "gdown"})
OWN_PACKAGE = "dlcv"
BLOCKED_MESSAGE = ("{name!r} is not in the course's inference environment (only {allowed}); imported by "
                   "{importer} on the graded path")


def _importer_module(frame) -> str:
    """The module whose code runs the import statement (skipping importlib's own frames)."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith(("importlib", "_frozen_importlib")) and name != __name__:
            return name
        frame = frame.f_back
    return ""


class CourseEnvironmentFinder:
    """A meta-path finder that refuses non-course, non-stdlib top-level imports made by dlcv code."""

    def __init__(self, allowed=COURSE_PACKAGES):
        self.allowed = frozenset(allowed) | {OWN_PACKAGE}
        self.refused: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if path is not None or top in self.allowed or top in sys.stdlib_module_names:
            return None  # submodules are decided by their top-level package; allowed: let the others find it
        importer = _importer_module(sys._getframe(1))
        if importer.partition(".")[0] != OWN_PACKAGE and importer != "__main__":
            return None  # an allowed package importing its own dependencies
        self.refused.append(fullname)
        raise ImportError(BLOCKED_MESSAGE.format(name=top, allowed=", ".join(sorted(self.allowed - {OWN_PACKAGE})),
                                                 importer=importer or "the script"), name=fullname)


def install(allowed=COURSE_PACKAGES) -> CourseEnvironmentFinder:
    finder = CourseEnvironmentFinder(allowed)
    sys.meta_path.insert(0, finder)
    return finder


def sitecustomize_source() -> str:
    """A sitecustomize.py that installs this guard at interpreter start (this file's own text, so
    the guard does not depend on the package it checks being importable)."""
    with open(__file__, encoding="utf-8") as fh:
        return fh.read() + "\n\ninstall()\n"
