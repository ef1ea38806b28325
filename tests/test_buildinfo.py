"""The llama.cpp build: set-up's check tells a native or AMX build from the portable one, and the
installed build is the one set-up intended (no native-only, AVX-512 or AMX path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rag.buildinfo import compiled_features, installed_system_info, mismatches

from .conftest import PROJECT

# What llama.cpp prints for pip's default build (GGML_NATIVE=ON) on a Xeon with AMX.
NATIVE_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | "
              "FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | "
              "AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
PORTABLE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")


def intended_flags(tier: str = "") -> str:
    """The CMake flags set-up builds with on this CPU (or for ``tier``), read from the one place
    that defines them."""
    out = subprocess.run(["bash", "-c", 'source scripts/llama-build.sh; printf %s '
                          '"$LLAMA_CMAKE_ARGS"'], cwd=PROJECT, capture_output=True, text=True,
                         check=True, env={**os.environ, "RAG_LLAMA_TIER": tier})
    return out.stdout


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_no_tier_is_native_or_uses_amx():
    for tier in ("avx2", "avx512"):
        flags = intended_flags(tier)
        for off in ("NATIVE", "AMX_INT8", "AMX_TILE", "AMX_BF16"):
            assert f"-DGGML_{off}=OFF" in flags, (tier, off)
        assert "-DGGML_AVX2=ON" in flags
    assert "-DGGML_AVX512=OFF" in intended_flags("avx2")


def test_the_tier_follows_the_cpu():
    avx512 = {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512vbmi",
              "avx512_vnni", "avx512_bf16"}
    expected = intended_flags("avx512" if avx512 <= cpu_flags() else "avx2")
    assert intended_flags() == expected


def test_a_native_amx_build_is_detected():
    problems = mismatches(NATIVE_AMX, intended_flags("avx512"))
    assert problems == ["AMX_INT8 is compiled in but the flags turn it off (a native build?)"]
    problems = mismatches(NATIVE_AMX, intended_flags("avx2"))
    assert any(p.startswith("AMX_INT8 is compiled in") for p in problems)
    assert any(p.startswith("AVX512 is compiled in") for p in problems)
    assert mismatches(PORTABLE, intended_flags("avx2")) == []


def test_flags_that_leave_native_on_are_rejected():
    assert any("GGML_NATIVE" in p for p in mismatches(PORTABLE, "-DGGML_AVX2=ON"))


def test_a_build_lacking_an_asked_for_path_is_detected():
    assert mismatches(PORTABLE, "-DGGML_NATIVE=OFF -DGGML_AVX512=ON") == [
        "AVX512 is asked for but not compiled in"]


def test_the_installed_build_is_the_one_setup_intended():
    info = installed_system_info()
    have = compiled_features(info)
    assert have.get("AVX2") and not have.get("AMX_INT8") and not have.get("AMX_BF16"), info
    assert mismatches(info, intended_flags()) == []


def test_setups_check_command_passes_the_installed_build_and_fails_other_flags():
    ok = subprocess.run([sys.executable, "-m", "rag.buildinfo", intended_flags()],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    other = subprocess.run([sys.executable, "-m", "rag.buildinfo",
                            "-DGGML_NATIVE=OFF -DGGML_AVX512=ON"], capture_output=True, text=True)
    assert other.returncode == 1 and "mismatch: AVX512" in other.stderr
