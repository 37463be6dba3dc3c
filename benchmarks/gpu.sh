#!/bin/bash
# Measurements on one GPU, to replace estimates (benchmarks/gpu_estimates.py) by numbers:
# 1. the bench suite at real scale with AMP (trainer.precision=auto -> bf16-mixed, or 16-mixed on
#    GPUs without bf16): the recipes' own batch sizes (P1 32/128/128, BYOL 256, fine-tune 64,
#    segmentation 8 at 512x512), every job, ours against the plain fp32 NCHW reference, plus ours in
#    fp32 (the AMP ratio) and with channels_last toggled -> RESULTS_gpu.md (~5 min on an H100);
# 2. P3 per recipe (benchmarks/gpu_p3.py): training steps/s of every configs/p3/*.yaml at its own
#    batch, and the hw1_3.sh command on 313 generated 512x512 JPEGs with each TTA (none, flip,
#    flip_multiscale; default precision and fp32 without TF32, as a 2080 Ti computes) with its
#    peak GPU memory -> RESULTS_gpu_p3.md (~5 min on an H100).
# Nothing is downloaded (random init, generated data). Without a CUDA GPU it says so and exits 0.
#
#   bash benchmarks/gpu.sh                # both
#   bash benchmarks/gpu.sh --p3-only      # part 2 only (fits a 10-minute slot)
#   bash benchmarks/gpu.sh --bench-only --repeats 5   # part 1 only; other arguments go to `dlcv bench`
#
# Needs the repo's .venv (make setup) or PYTHON=/path/to/python with the package installed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
PY="${PYTHON:-$here/.venv/bin/python}"
parts="all"
if [ "${1:-}" = "--p3-only" ] || [ "${1:-}" = "--bench-only" ]; then
    parts="${1#--}"
    shift
fi
rc=0
"$PY" - <<'PY' || rc=$?
import sys, torch
if not torch.cuda.is_available():
    print(f"benchmarks/gpu.sh: no CUDA GPU visible (torch {torch.__version__}, CUDA build {torch.version.cuda}): "
          "nothing measured. `python benchmarks/gpu_estimates.py` prints the estimates; `dlcv bench` the CPU suite.",
          file=sys.stderr)
    sys.exit(3)
p = torch.cuda.get_device_properties(0)
print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, "
      f"bf16: {torch.cuda.is_bf16_supported()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
if [ "$rc" = 3 ]; then
    exit 0  # no GPU: not a failure of the script, nothing to measure here
elif [ "$rc" != 0 ]; then
    echo "benchmarks/gpu.sh: $PY could not check for a GPU (exit $rc)" >&2
    exit "$rc"
fi
start=$(date +%s)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
if [ "$parts" != "p3-only" ]; then
    timeout 900 "$PY" -m dlcv bench --scale gpu --device cuda \
        --jobs all --data "$here/.cache/bench_data" --out "$here/benchmarks/RESULTS_gpu.md" \
        --results "$here/benchmarks/results_gpu.json" --max-wait 0 "$@"
fi
if [ "$parts" != "bench-only" ]; then
    timeout 900 "$PY" "$here/benchmarks/gpu_p3.py"
fi
echo "benchmarks/gpu.sh: $(( $(date +%s) - start )) s in all"
