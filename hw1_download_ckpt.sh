#!/bin/bash
# Fetch the checkpoints hw1_1.sh, hw1_2.sh and hw1_3.sh use (run once, from the repo root).
# Sources: hw1_checkpoints.txt, or $DLCV_P1_URL / $DLCV_P2_URL / $DLCV_P3_URL (http(s) URL or local file).
# Destinations: $DLCV_P1_CKPT / $DLCV_P2_CKPT / $DLCV_P3_CKPT, default checkpoints/p{1,2,3}_model.pt.
here="$(dirname "$0")"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded fetch "$@"
