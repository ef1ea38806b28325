"""The benchmark command's smoke run: every section runs and reports what it claims."""

import json
import subprocess
import sys

import pytest

from .conftest import PROJECT

pytestmark = pytest.mark.e2e


def test_quick_benchmark_prints_tables_and_writes_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--skip", "small",
                          "--out", str(tmp_path)], cwd=PROJECT, capture_output=True, text=True,
                         timeout=1200, check=True)
    res = json.loads((tmp_path / "benchmarks.json").read_text())
    for title in ("Ingestion", "Per-question stages", "naive chain", "Generation",
                  "Retrieval at scale", "Goals"):
        assert title in out.stdout, title
    assert all(row["reingest_embedded"] == 0 for row in res["ingest"])
    assert {r["mode"] for r in res["scale"]} == {"embedded", "server"}
    assert all(r["chunks"] == 1000 and r["hybrid_p95_ms"] > 0 for r in res["scale"])
    q = res["questions"]["1.5b"]
    assert q["questions"] == 4 and "naive" in q and q["generation"]["prompt_tokens_p50"] > 0
