#!/usr/bin/env bash
# Debian packages the report needs: graphviz (architecture figures) and chromium (HTML -> PDF,
# browser tests). --optional: install when possible (root + apt), otherwise just say what is missing.
set -u
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]} (Debian packages) ..."
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    exit 0
  fi
fi
if [ "${1:-}" = "--optional" ]; then
  echo "note: ${missing[*]} not installed: the report falls back (no PDF / simpler architecture figures)." >&2
  echo "      install with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "error: could not install ${missing[*]}" >&2
exit 1
