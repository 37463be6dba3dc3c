#!/usr/bin/env bash
# Build (once) the course's graded inference environment of graded-env.txt and print its python3.
# Cached outside the checkout, keyed by the file's hash, so clean clones and CI runs on the same
# machine reuse it: ${DLCV_GRADED_ENV:-${XDG_CACHE_HOME:-~/.cache}/dlcv/graded-env-<hash>}.
# About 70 s and 4 GB the first time (torch 2.0.1 is a CUDA build with its nvidia-* wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
hash=$(sha256sum graded-env.txt | cut -c1-12)
dir="${DLCV_GRADED_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dlcv/graded-env-$hash}"
if [ ! -f "$dir/.complete" ]; then
    echo "building the graded environment in $dir (once)" >&2
    python3 -c "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)" "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python3" -m pip install --quiet --disable-pip-version-check -r graded-env.txt >&2
    touch "$dir/.complete"
fi
echo "$dir/bin/python3"
