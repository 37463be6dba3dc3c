#!/bin/bash
# Fetch the checkpoints hw1_1.sh, hw1_2.sh and hw1_3.sh use (run once, from the repo root).
# Sources: hw1_checkpoints.txt, or $DLCV_P1_URL / $DLCV_P2_URL / $DLCV_P3_URL (http(s) URL or local file).
# Destinations: $DLCV_P1_CKPT / $DLCV_P2_CKPT / $DLCV_P3_CKPT, default checkpoints/p{1,2,3}_model.pt.
# Links: any direct http(s) URL, a GitHub release asset, a Google Drive or Dropbox share link (rewritten to
# its direct download); a dropped connection is resumed once; a file is put in place only once it is
# complete, matches its sha256 (if given) and loads safely as a dlcv checkpoint.
here="$(dirname "$0")"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 -m dlcv.graded fetch "$@"
