"""Is the installed llama.cpp the build set-up intended? ``python -m rag.buildinfo CMAKE_ARGS``.

llama.cpp reports the CPU paths it was compiled with (``llama_print_system_info``:
``AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | ...``). A native build (``-march=native``, llama.cpp's
default) made on a CPU with AVX-512 or AMX shows those paths although the project's flags turn
them off: the AMX path segfaults with our Q4_K_M models, and an AVX-512 build dies with SIGILL
on a CPU without it. pip's wheel cache is keyed by version only, so such a wheel can come back
on any machine: set-up checks the installed build with this module and rebuilds on a mismatch.
"""

from __future__ import annotations

import re
import subprocess
import sys

# Paths that must be off unless the flags turn them on explicitly (the portable build's risk list).
RISKY = ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "AMX_BF16")
# Paths llama.cpp names in its system info when they are compiled in (absent ones go unnamed).
REPORTED = ("AVX", "AVX2", "F16C", "FMA", "BMI2", "AVX_VNNI", *RISKY)


def compiled_features(system_info: str) -> dict[str, bool]:
    """``{"AVX2": True, "AMX_INT8": False, ...}`` from llama.cpp's system-info line."""
    return {name: value != "0" for name, value in re.findall(r"\b([A-Z0-9_]+) = (\d+)",
                                                             system_info)}


def intended_features(cmake_args: str) -> dict[str, bool]:
    """``-DGGML_AVX2=ON -DGGML_AMX_INT8=OFF`` -> ``{"AVX2": True, "AMX_INT8": False}``."""
    return {name: value.upper() in {"ON", "1", "TRUE", "YES"}
            for name, value in re.findall(r"-DGGML_([A-Z0-9_]+)=(\w+)", cmake_args)}


def mismatches(system_info: str, cmake_args: str) -> list[str]:
    """What the build has that the flags did not ask for, or lacks that they asked for."""
    have, want = compiled_features(system_info), intended_features(cmake_args)
    out = []
    if want.get("NATIVE", True):
        out.append("the flags do not turn GGML_NATIVE off: the build would depend on the CPU "
                   "it was made on")
    for name in RISKY:
        if have.get(name) and not want.get(name):
            out.append(f"{name} is compiled in but the flags turn it off (a native build?)")
    for name, on in want.items():
        if on and name in REPORTED and not have.get(name):
            out.append(f"{name} is asked for but not compiled in")
    return out


def installed_system_info(python: str = sys.executable) -> str:
    """The installed llama-cpp-python's system info, read in a subprocess (importing a broken
    native library must not take the caller down)."""
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"cannot import llama_cpp (exit {out.returncode}): "
                           f"{out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rag.buildinfo 'CMAKE_ARGS'", file=sys.stderr)
        return 2
    try:
        info = installed_system_info()
    except RuntimeError as exc:
        print(f"llama.cpp build: {exc}", file=sys.stderr)
        return 1
    problems = mismatches(info, argv[0])
    print(f"llama.cpp build: {info}")
    for p in problems:
        print(f"  mismatch: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
