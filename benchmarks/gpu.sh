#!/bin/bash
# The bench suite at real scale on one GPU, with AMP (trainer.precision=auto -> bf16-mixed, or
# 16-mixed on GPUs without bf16): the recipes' own batch sizes (P1 32/128/128, BYOL 256, fine-tune 64,
# segmentation 8 at 512x512), every job, ours against the plain fp32 NCHW reference, plus ours in
# fp32 (the AMP ratio) and with channels_last toggled. About 5 minutes on one H100-class GPU
# (budget: under 8); nothing is downloaded (random init, generated data).
#
#   bash benchmarks/gpu.sh                # -> benchmarks/RESULTS_gpu.md + benchmarks/results_gpu.json
#   bash benchmarks/gpu.sh --repeats 5    # extra arguments go to `dlcv bench`
#
# Needs the repo's .venv (make setup) or PYTHON=/path/to/python with the package installed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
PY="${PYTHON:-$here/.venv/bin/python}"
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("benchmarks/gpu.sh: no CUDA GPU visible; run `dlcv bench` for the CPU suite")
p = torch.cuda.get_device_properties(0)
print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, "
      f"bf16: {torch.cuda.is_bf16_supported()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
start=$(date +%s)
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" timeout 900 "$PY" -m dlcv bench --scale gpu --device cuda \
    --jobs all --data "$here/.cache/bench_data" --out "$here/benchmarks/RESULTS_gpu.md" \
    --results "$here/benchmarks/results_gpu.json" --max-wait 0 "$@"
echo "benchmarks/gpu.sh: $(( $(date +%s) - start )) s in all"
