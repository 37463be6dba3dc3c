"""One problem's rows: its checkpoint, then its graded script on the hidden-test stand-in (run under
the import guard, its output checked, scored and timed)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlcv.check.hidden import REAL_P3_SIZE, SPECS, HiddenSet, make_hidden_set
from dlcv.check.outputs import check_output
from dlcv.check.rows import FAIL, PASS, SKIP, Row, guarded
from dlcv.check.runner import failure_reason, run_script
from dlcv.check.score import score_row
from dlcv.check.sources import checkpoint_row
from dlcv.check.timing import LIMIT_S, extrapolate, size_note, time_row

OUTPUT_LIMITS = {"p1": "filename,label; 1 row/image; 0..49",
                 "p2": "id,filename,label; its rows; 0..64",
                 "p3": "1 RGB PNG/input; input size; 7 colours"}


@dataclass
class Context:
    repo: Path
    data: Path
    work: Path
    env: dict
    checkpoints: dict  # problem -> Path
    timeout: float
    device: str
    demo: bool
    data_ok: bool


def _skipped(script: str, reason: str) -> list[Row]:
    return [Row(f"{script} run", SKIP, note=f"not run: {reason}")]


def problem_rows(ctx: Context, problem: str) -> list[Row]:
    script = SPECS[problem].script
    ckpt = checkpoint_row(problem, ctx.checkpoints[problem], f"--{problem}-ckpt")
    if ckpt.result == FAIL:
        return [ckpt, *_skipped(script, f"the {problem} checkpoint is missing")]
    if not ctx.data_ok:
        return [ckpt, *_skipped(script, "no hw1_data")]
    return [ckpt, *guarded(f"{script} run", lambda: _script_rows(ctx, problem))]


def _script_rows(ctx: Context, problem: str) -> list[Row]:
    spec = SPECS[problem]
    hidden = make_hidden_set(problem, ctx.data, ctx.work / problem)
    run = run_script(ctx.repo, spec.script, hidden.args, ctx.env, ctx.timeout)
    figure = f"exit {run.returncode} in {run.seconds:.1f} s ({hidden.n:,} images)"
    if not run.ok:
        reason = failure_reason(run, ctx.timeout)
        if run.returncode is None:
            figure = f"killed after {run.seconds:.0f} s ({hidden.n:,} images)"
            if ctx.device.startswith("cpu"):
                reason += (f" on this CPU ({ctx.device}); the graders run on a GPU: a larger --timeout lets the "
                           f"check finish here")
        return [Row(f"{spec.script} run", FAIL, figure, "exit 0; course packages", reason)]
    rows = [Row(f"{spec.script} run", PASS, figure, "exit 0; course packages",
                f"under the course-environment import guard, on {spec.source} as a hidden test set")]
    output = check_output(hidden)
    rows.append(Row(f"{spec.script} output", FAIL if output.problems else PASS, output.figure,
                    OUTPUT_LIMITS[problem], "; ".join(output.problems)))
    metric = f"{problem.upper()} {spec.metric}"
    if output.problems:
        rows.append(Row(metric, SKIP, note="not scored: the output is not what the graders read (see above)"))
    else:
        rows += guarded(metric, lambda: [score_row(hidden, output.predictions, ctx.demo)])
    rows += guarded(f"{spec.script} time", lambda: [_time(ctx, problem, hidden, run.seconds)])
    return rows


def _image_size(hidden: HiddenSet) -> tuple[int, int] | None:
    from PIL import Image

    if hidden.problem != "p3" or not hidden.inputs:
        return None
    with Image.open(hidden.image_dir / hidden.inputs[0]) as img:
        return img.size


def _time(ctx: Context, problem: str, hidden: HiddenSet, seconds: float) -> Row:
    spec = SPECS[problem]
    estimate = extrapolate(seconds, hidden.n, spec.hidden_n)
    how = (f"{seconds:.1f} s for {hidden.n:,} images x {spec.hidden_n:,}/{hidden.n:,} "
           f"(start-up counted in every image: an upper bound)")
    if estimate > LIMIT_S and hidden.n > 1:  # separate the start-up with a one-image run
        one = make_hidden_set(problem, ctx.data, ctx.work / f"{problem}_one", limit=1)
        single = run_script(ctx.repo, spec.script, one.args, ctx.env, ctx.timeout)
        if single.ok:
            estimate = extrapolate(seconds, hidden.n, spec.hidden_n, single.seconds)
            how = (f"start-up {single.seconds:.1f} s (one image) + {(seconds - single.seconds) / (hidden.n - 1):.3f} s"
                   f" per image x {spec.hidden_n - 1:,}")
    real = REAL_P3_SIZE if problem == "p3" else None
    return time_row(spec.script, estimate, spec.hidden_n, f"{how}; on {ctx.device}",
                    ctx.device, size_note(_image_size(hidden), real))
