"""Start a server on loopback, wait until it answers, stop it afterwards; read a process's
memory. Shared by the benchmarks, the load test and the tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(cmd: list[str], ready_url: str, log: Path, timeout: float = 240.0,
                   env: dict[str, str] | None = None, cwd: Path | None = None
                   ) -> Iterator[subprocess.Popen]:
    """Start ``cmd``, wait until ``ready_url`` answers (any status below 500), stop it after."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} not ready after {timeout:.0f} s")
                time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


PROJECT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class App:
    url: str
    pid: int


@contextlib.contextmanager
def running_app(settings, log: Path, **env: str) -> Iterator[App]:  # noqa: ANN001 - Settings
    """The chat UI (``app_gradio.py``) over ``settings``' corpus and store, on a free loopback
    port."""
    import sys

    port = free_port()
    cmd = [sys.executable, str(PROJECT / "app_gradio.py"), "--port", str(port)]
    env = {"RAG_CORPUS_DIR": str(settings.corpus_dir), "RAG_STORE_DIR": str(settings.store_dir),
           "RAG_MODEL_DIR": str(settings.model_dir), **env}
    url = f"http://127.0.0.1:{port}"
    with running_server(cmd, url, log, env=env, cwd=PROJECT) as proc:
        yield App(url, proc.pid)


def rotated_corpus(dest: Path, units: list[str], n_files: int) -> Path:
    """``n_files`` distinct reports in ``dest``, each the ``units`` (paragraphs or lines of
    the article) rotated by its number, so every file's chunks differ."""
    dest.mkdir(parents=True)
    for i in range(n_files):
        r = i % len(units)
        body = "\n\n".join(units[r:] + units[:r])
        (dest / f"report-{i:02d}.txt").write_text(f"Field report number {i}.\n\n{body}\n")
    return dest
