#!/usr/bin/env bash
# The one llama-cpp-python build this project uses, and where its wheel is kept.
# Sourced by setup.sh and benchmarks; prints nothing.
#
# Portable x86-64 build: AVX2/FMA/F16C/BMI2 (every machine of this kind has them), no -march=native,
# no AVX-512, no AMX. llama.cpp's default GGML_NATIVE=ON compiles for the build machine's CPU: on a
# CPU with AMX that turns on the AMX backend, which segfaults with our Q4_K_M models
# (ggml-org/llama.cpp#20824), and a native wheel reused on a CPU without AVX-512 dies with SIGILL.
# LLAVA_BUILD=OFF: no multimodal library (unused here; saves compile time).
LLAMA_VERSION=0.3.36
LLAMA_CMAKE_ARGS=${RAG_LLAMA_CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"}
# The wheel is kept under a key of version + build flags + compiler: pip's own wheel cache is keyed
# by version only and would hand back a wheel built with other flags (or natively elsewhere).
LLAMA_BUILD_KEY=$(printf '%s\n%s\n%s\n' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" \
  "$(${CC:-gcc} --version 2>/dev/null | head -1)" | sha256sum | cut -c1-16)
LLAMA_WHEEL_DIR=${RAG_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-wheels}/llama-cpp-python-$LLAMA_VERSION-$LLAMA_BUILD_KEY

# Build the wheel into $LLAMA_WHEEL_DIR unless it is there (atomic: a killed build leaves nothing).
llama_build_wheel() {
  local py=$1
  if compgen -G "$LLAMA_WHEEL_DIR/llama_cpp_python-*.whl" >/dev/null; then
    return 0
  fi
  local tmp
  tmp=$(mktemp -d "${LLAMA_WHEEL_DIR}.tmp.XXXX" 2>/dev/null || { mkdir -p "$(dirname "$LLAMA_WHEEL_DIR")"; mktemp -d "${LLAMA_WHEEL_DIR}.tmp.XXXX"; })
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$py" -m pip --disable-pip-version-check wheel --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$LLAMA_VERSION"
  rm -rf "$LLAMA_WHEEL_DIR"
  mv "$tmp" "$LLAMA_WHEEL_DIR"
  printf '%s\n' "$LLAMA_CMAKE_ARGS" > "$LLAMA_WHEEL_DIR/cmake-args.txt"
}
