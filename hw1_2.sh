#!/bin/bash
# P2 graded predictions: bash hw1_2.sh <images.csv> <image_dir> <out.csv>
# Model: setting C (our BYOL backbone, fine-tuned on Office-Home). Writes the rows of <images.csv>
# in its order as id,filename,label with the predicted label; an unreadable image keeps an empty
# label, is named on stderr, and the exit status is non-zero.
# Checkpoint: $DLCV_P2_CKPT, default checkpoints/p2_model.pt (fetched by hw1_download_ckpt.sh).
here="$(dirname "$0")"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded predict p2 "${DLCV_P2_CKPT:-$here/checkpoints/p2_model.pt}" "$1" "$2" "$3"
