#!/bin/bash
# P3 graded predictions: bash hw1_3.sh <image_dir> <out_dir>
# Writes <out_dir>/xxxx_mask.png (8-bit RGB, the input's size, the 7 legal colours) for every
# <image_dir>/xxxx_sat.jpg; out_dir is created if missing.
# Checkpoint: $DLCV_P3_CKPT, default checkpoints/p3_model.pt (fetched by hw1_download_ckpt.sh).
# Test-time augmentation: $DLCV_P3_TTA, default auto = flips x scales 0.75/1/1.25 on a GPU (9 passes;
# about 1-6 min for 313 images on a 2080 Ti, see benchmarks/gpu_estimates.py; it steps down to fewer
# passes by itself if a slow GPU would not finish in time), none on a CPU. Others: none, flip
# (image + h and v mirrors), multiscale, flip_multiscale.
here="$(dirname "$0")"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded predict p3 "${DLCV_P3_CKPT:-$here/checkpoints/p3_model.pt}" "$1" "$2" --tta-mode "${DLCV_P3_TTA:-auto}"
