#!/usr/bin/env bash
# The llama-cpp-python build this project uses, and where its wheel is kept. Sourced by setup.sh
# and the tests; prints nothing.
#
# Never native: llama.cpp's default GGML_NATIVE=ON compiles for the build machine's CPU. On a CPU
# with AMX that turns on the AMX backend, which segfaults with our Q4_K_M models
# (ggml-org/llama.cpp#20824), and a native wheel reused on a CPU without AVX-512 dies with SIGILL.
# Instead one of two explicit instruction sets, chosen from this CPU's flags (/proc/cpuinfo), AMX
# always off:
#   avx512  AVX2/FMA/F16C/BMI2 + AVX-512 F/CD/VL/DQ/BW, VBMI, VNNI, BF16 (when the CPU has all)
#   avx2    AVX2/FMA/F16C/BMI2 (every x86-64 machine of this project's kind)
# Measured here (benchmarks/llama.py, 1.5B, 722-token prompt): prefill 103.7 tok/s avx512 vs
# 75.4 avx2, decode 13.6 vs 13.3. RAG_LLAMA_TIER=avx2 forces the portable one (e.g. for a .venv
# shared by machines with different CPUs). LLAVA_BUILD=OFF: no multimodal library (unused).
LLAMA_VERSION=0.3.36
_llama_amx_off="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
_llama_avx2="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
_llama_no512="-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
_llama_512="-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"

llama_cpu_tier() {
  local flags need
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  for need in avx2 fma f16c bmi2; do
    [[ $flags == *" $need "* ]] || { echo unsupported; return; }
  done
  for need in avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16; do
    [[ $flags == *" $need "* ]] || { echo avx2; return; }
  done
  echo avx512
}

LLAMA_TIER=${RAG_LLAMA_TIER:-$(llama_cpu_tier)}
case $LLAMA_TIER in
  avx512) LLAMA_CMAKE_ARGS="$_llama_avx2 $_llama_512 $_llama_amx_off" ;;
  avx2) LLAMA_CMAKE_ARGS="$_llama_avx2 $_llama_no512 $_llama_amx_off" ;;
  *) LLAMA_CMAKE_ARGS="" ;;  # setup.sh stops with a message
esac
LLAMA_CMAKE_ARGS=${RAG_LLAMA_CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}
# The wheel is kept under a key of version + build flags + compiler: pip's own wheel cache is keyed
# by version only and would hand back a wheel built with other flags (or natively elsewhere).
LLAMA_BUILD_KEY=$(printf '%s\n%s\n%s\n' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" \
  "$(${CC:-gcc} --version 2>/dev/null | head -1)" | sha256sum | cut -c1-16)
LLAMA_WHEEL_DIR=${RAG_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-wheels}/llama-cpp-python-$LLAMA_VERSION-$LLAMA_BUILD_KEY

# Build the wheel into $LLAMA_WHEEL_DIR unless it is there (atomic: a killed build leaves nothing).
llama_build_wheel() {
  local py=$1 tmp
  if compgen -G "$LLAMA_WHEEL_DIR/llama_cpp_python-*.whl" >/dev/null; then
    return 0
  fi
  mkdir -p "$(dirname "$LLAMA_WHEEL_DIR")"
  tmp=$(mktemp -d "${LLAMA_WHEEL_DIR}.tmp.XXXX")
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$py" -m pip --disable-pip-version-check wheel --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$LLAMA_VERSION"
  printf '%s\n' "$LLAMA_CMAKE_ARGS" > "$tmp/cmake-args.txt"
  rm -rf "$LLAMA_WHEEL_DIR"
  mv "$tmp" "$LLAMA_WHEEL_DIR"
}
