"""One typed settings object: defaults < ``rag.toml`` < ``RAG_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


def is_checkout(root: Path) -> bool:
    """Whether ``root`` is this project's source checkout (its ``pyproject.toml`` names
    ``rag``)."""
    try:
        with (root / "pyproject.toml").open("rb") as fh:
            return tomllib.load(fh).get("project", {}).get("name") == "rag"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def source_checkout() -> Path | None:
    """The source checkout this package runs from (the package's parent folder), or None for
    an installed package."""
    root = Path(__file__).resolve().parent.parent
    return root if is_checkout(root) else None


def _project_root() -> Path:
    # The folder the default paths (corpus/, .rag/chroma, .rag/models) hang off: $RAG_HOME if
    # set; else the source checkout when the package runs from one (as before: the repo's
    # corpus/ and .rag/, whatever the working directory); else, for an installed wheel (whose
    # parent folder is site-packages), the working directory at import, so `rag ingest` in a
    # folder uses ./corpus and ./.rag. Each path can still be set on its own (rag.toml, RAG_*).
    home = os.environ.get("RAG_HOME")
    if home:
        return Path(home).expanduser().resolve()
    return source_checkout() or Path.cwd()


PROJECT_ROOT = _project_root()
# The default corpus (one article) and the example questions the UI offers for it.
ARTICLE_SOURCE = "us-policy-in-tajikistan.txt"
ARTICLE_EXAMPLES = (
    "How much is the Boeing deal worth?",
    "Who is Emily Harding?",
    "Which minerals does Tajikistan have?",
    "What is the capital of Tajikistan?",
)


@dataclass(frozen=True)
class Settings:
    # where things live
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    store_dir: Path = PROJECT_ROOT / ".rag" / "chroma"
    model_dir: Path = PROJECT_ROOT / ".rag" / "models"
    collection: str = "corpus"  # DEFAULT_COLLECTION; each its own index, lexical index, uploads
    chroma_url: str = ""  # e.g. http://127.0.0.1:8000 to use a Chroma server instead of a folder

    # the embedding model: "" = the packaged all-MiniLM-L6-v2; a sentence-transformers folder;
    # or, with embedding_url, the model name an OpenAI-compatible /v1/embeddings server is
    # asked for (key in the env var openai_api_key_env names). Changing it needs
    # `rag ingest --rebuild`: an index answers only with the model that built it.
    embedding_model: str = ""
    embedding_url: str = ""  # e.g. http://127.0.0.1:8081/v1 (a GPU embedding server)

    # chunking, in tiktoken cl100k tokens
    chunk_tokens: int = 96
    chunk_overlap: int = 48  # whole sentences only: about one trailing sentence
    max_file_bytes: int = 20_000_000

    # retrieval
    k: int = 4  # passages given to the model
    focus_sentences: int = 0  # if > 0, only this many sentences of each passage, around the
    # one closest to the question, go into the prompt (overview questions get whole chunks)
    # whole-corpus context: a corpus of at most this many tokens (without chunk overlap) goes
    # into every prompt whole, in document order, as a fixed prefix whose KV cache llama.cpp
    # reuses: the model sees every passage and each question costs only its own tokens.
    # 0 turns it off; larger corpora always use the retrieved passages.
    full_context_tokens: int = 1500
    k_dense: int = 10
    k_lexical: int = 10
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0

    # abstention gate and citation checker
    min_relevance: float = 0.15  # best query/passage cosine below this: abstain without the LLM
    min_support: float = 0.45  # claim/quote score needed to keep a sentence
    max_question_chars: int = 2000
    # ask the LLM (in its own worker) whether each kept sentence's quote says what it says (a
    # sentence that fails is dropped), and check what 'why' questions take for granted
    # (grounding/premise.py). Only with the backend the settings name (an injected LLM gets no
    # second job).
    entailment: bool = True
    # when the model's answer does not hold (or it says the documents are silent), answer with
    # the context's sentences that the same verifier says answer the question, verbatim and
    # labelled (grounding/extractive.py); needs ``entailment``'s verifier
    extractive: bool = True
    # a sentence less close to the question than the verifier's usual 0.57 (cosine), down to
    # this, is taken only if the model copies answer words that stand in it (0: off)
    extract_floor: float = 0.45
    # a kept answer is completed with source sentences, verbatim (grounding/complete.py): for
    # each part of the question the answer does not take up, its closest sentence; a summary,
    # from further passages until it cites ``summary_passages`` (0: off), then the
    # ``summary_sentences`` sentences closest to its topic that it does not cite yet (0: off;
    # not when the question asks for a short answer: "in two sentences", "briefly")
    complete: bool = True
    summary_passages: int = 3
    summary_sentences: int = 6  # 4 -> 6: +2 of 28 dev summaries, none lost (stop 21)
    # how much a summary's added sentence is kept from repeating one already there (maximal
    # marginal relevance; 0: the sentences closest to the topic)
    summary_diversity: float = 0.0

    # generation
    backend: str = "llama"  # "llama" (embedded GGUF) or "openai" (any OpenAI-compatible server)
    model_size: str = "1.5b"  # "1.5b" or "0.5b": the two packaged models
    model_path: str = ""  # any GGUF file instead (its chat template is read from the file)
    n_threads: int = 2
    n_ctx: int = 4096
    max_tokens: int = 160
    temperature: float = 0.0
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_model: str = "local"
    openai_api_key_env: str = "OPENAI_API_KEY"  # name of the env var holding the key
    timeout: float = 120.0

    # the chat UI's example questions. The default (questions about the default article) is
    # shown only while that article is indexed; set your own (a TOML list, or `|`-separated in
    # RAG_EXAMPLES), or an empty list for none.
    examples: tuple[str, ...] = ARTICLE_EXAMPLES

    @classmethod
    def load(cls, config: Path | str | None = None, **overrides: Any) -> Settings:
        """Defaults, then a TOML file (``RAG_CONFIG`` or ``./rag.toml``), then ``RAG_*`` env vars,
        then keyword overrides."""
        values: dict[str, Any] = {}
        path = Path(config or os.environ.get("RAG_CONFIG", "rag.toml"))
        if path.is_file():
            with path.open("rb") as fh:
                values.update(tomllib.load(fh))
        for f in fields(cls):
            env = os.environ.get(f"RAG_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{k: _coerce(known[k].type, k, v) for k, v in values.items()})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        if not COLLECTION_NAME.fullmatch(self.collection):
            raise ValueError(f"collection name {self.collection!r}: use 3-63 letters, digits, "
                             "'-' or '_', starting and ending with a letter or digit")

    @property
    def uploads_dir(self) -> Path:
        """Where the chat UI and the API keep this collection's uploaded files (beside the
        store, never in the corpus): ``uploads`` for the default collection, else
        ``uploads-<collection>``."""
        name = "uploads" if self.collection == DEFAULT_COLLECTION else f"uploads-{self.collection}"
        return self.store_dir.parent / name


DEFAULT_COLLECTION = "corpus"
# Chroma's rules, without dots (the store names its own helper collections `<name>.current`
# and `<name>.r<time>`)
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,61}[A-Za-z0-9]")


def _coerce(type_name: Any, name: str, value: Any) -> Any:
    t = str(type_name)
    try:
        if t == "Path":
            return Path(value).expanduser()
        if t == "int":
            return int(value)
        if t == "float":
            return float(value)
        if t == "bool":
            return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
        if t.startswith("tuple[str"):
            items = value.split("|") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str)
                                                               for i in items):
                raise TypeError(name)
            return tuple(i.strip() for i in items if i.strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name}={value!r} is not a valid {t}") from exc
