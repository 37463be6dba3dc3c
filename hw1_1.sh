#!/bin/bash
# P1 graded predictions: bash hw1_1.sh <image_dir> <out.csv>
# Checkpoint: $DLCV_P1_CKPT, default checkpoints/p1_model.pt (fetched by hw1_download_ckpt.sh).
here="$(dirname "$0")"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded predict p1 "${DLCV_P1_CKPT:-$here/checkpoints/p1_model.pt}" "$1" "$2"
