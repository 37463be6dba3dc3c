#!/bin/bash
# P3 graded predictions: bash hw1_3.sh <image_dir> <out_dir>
# Writes <out_dir>/xxxx_mask.png (8-bit RGB, the input's size, the 7 legal colours) for every
# <image_dir>/xxxx_sat.jpg; out_dir is created if missing.
# Checkpoint: $DLCV_P3_CKPT, default checkpoints/p3_model.pt (fetched by hw1_download_ckpt.sh).
# Flip test-time augmentation: DLCV_P3_TTA=1 (3x the compute).
here="$(dirname "$0")"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded predict p3 "${DLCV_P3_CKPT:-$here/checkpoints/p3_model.pt}" "$1" "$2"
