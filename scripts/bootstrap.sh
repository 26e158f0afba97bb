#!/usr/bin/env bash
# Make sure `uv` is available and the workspace virtualenv is installed from the lock file.
# Only Python 3.11 is needed on the machine: uv itself is installed into .tools/ if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  if [ ! -x .tools/bin/uv ]; then
    echo "bootstrap: installing uv ${UV_VERSION} into .tools/" >&2
    python3.11 -m venv .tools 2>/dev/null || python3 -m venv .tools
    .tools/bin/pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
  fi
  UV=$PWD/.tools/bin/uv
fi
"$UV" sync --frozen --quiet --python 3.11 "$@"
echo "$UV"
