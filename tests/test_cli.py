"""The command line's contract: exit codes (0 done, 1 runtime error, 2 usage error), `--version`,
`rag ask -` reading the question from standard input, and help on every argument."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from rag.cli import build_parser
from tests.support import PROJECT


def rag(*args: str, stdin: str = "", store: str = "", timeout: float = 300
        ) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if store:
        env["RAG_STORE_DIR"] = store
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], input=stdin, env=env,
                          cwd=PROJECT, capture_output=True, text=True, timeout=timeout)


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    out = rag("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"rag {version('rag')}"


@pytest.mark.parametrize(("stdin", "words"), [
    ("   \n\t ", "empty"),
    ("why " * 1000, "3,999 characters long"),  # the exact count proves stdin was read
])
def test_ask_dash_reads_the_question_from_stdin_and_a_bad_one_is_a_usage_error(stdin, words):
    out = rag("ask", "-", stdin=stdin)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and words in out.stderr
    assert "Traceback" not in out.stderr


def test_a_missing_index_is_a_runtime_error(tmp_path):
    out = rag("ask", "How much is the Boeing deal worth?", store=str(tmp_path / "none"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "error: " in out.stderr and "rag ingest" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_unknown_setting_is_a_usage_error(tmp_path):
    config = tmp_path / "rag.toml"
    config.write_text("chunk_tokenz = 5\n")
    out = rag("--config", str(config), "list")
    assert out.returncode == 2 and "unknown setting(s): chunk_tokenz" in out.stderr


def test_every_argument_has_help():
    def undocumented(parser: argparse.ArgumentParser) -> list[str]:
        missing = []
        for action in parser._actions:  # noqa: SLF001 - argparse keeps them here
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                missing += [m for sub in action.choices.values() for m in undocumented(sub)]
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert undocumented(build_parser()) == []


def test_collections_keep_their_documents_apart(tmp_path):
    import json

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bridge.txt").write_text("The Lantern Bridge was designed by Ilse Kestrel.")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "fest.txt").write_text("The Zorblat festival began in 1987 in Kulob.")
    store = str(tmp_path / "store")
    assert rag("ingest", str(tmp_path / "a"), store=store).returncode == 0
    out = rag("--collection", "fests", "ingest", str(tmp_path / "b"), store=store)
    assert out.returncode == 0, out.stderr

    listed = json.loads(rag("collections", "--json", store=store).stdout)
    assert [(c["name"], c["documents"], c["chunks"]) for c in listed] == [
        ("corpus", 1, 1), ("fests", 1, 1)]

    def sources(*collection: str) -> list[str]:
        out = rag(*collection, "list", "--json", store=store)
        assert out.returncode == 0, out.stderr
        return [d["source"] for d in json.loads(out.stdout)]

    assert sources() == ["bridge.txt"]
    assert sources("--collection", "fests") == ["fest.txt"]
    assert rag("--collection", "fests", "remove", "fest.txt", store=store).returncode == 0
    assert sources("--collection", "fests") == [] and sources() == ["bridge.txt"]
    assert (tmp_path / "b" / "fest.txt").exists()  # a user's file is never deleted

    bad = rag("--collection", "../x", "list", store=store)
    assert bad.returncode == 2 and bad.stderr.startswith("error: collection name")


def test_json_output_carries_no_control_or_bidi_character(tmp_path):
    import json

    name = "report\u202etxt.exe\u202c.txt"  # a right-to-left override in a file name
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / name).write_text("The Lantern Bridge was designed by Ilse Kestrel.")
    store = str(tmp_path / "store")
    assert rag("ingest", str(tmp_path / "docs"), store=store).returncode == 0
    out = rag("list", "--json", store=store)
    assert out.returncode == 0 and out.stdout.isascii(), out.stdout
    assert [d["source"] for d in json.loads(out.stdout)] == [name]  # exact once decoded
