"""An offline question-answering assistant that only says what its documents say, and shows where.

    from rag import Assistant
    answer = Assistant().ask("How much is the Boeing deal worth?")
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # an offline product calls no one

from .assistant import ABSTAIN, DISAGREE_LABEL, EXTRACTIVE_LABEL, Assistant, QuestionError  # noqa: E402
from .documents import Removal, UnknownDocument  # noqa: E402
from .generation import BackendError  # noqa: E402
from .ingestion import IngestBusy, IngestReport  # noqa: E402
from .loaders import LoadError  # noqa: E402
from .models import ModelError  # noqa: E402
from .settings import Settings  # noqa: E402
from .store import StoreError  # noqa: E402
from .types import Answer, Chunk, Citation, DocumentInfo, Passage  # noqa: E402

# Errors a command line reports as "error: <message>" (each message names its fix): usage
# errors (a bad question, path or setting: exit code 2) and runtime errors (the store, the model
# or a running ingest: exit code 1).
USAGE_ERRORS = (QuestionError, LoadError, ValueError)
RUNTIME_ERRORS = (StoreError, BackendError, ModelError, IngestBusy, UnknownDocument)
USER_ERRORS = USAGE_ERRORS + RUNTIME_ERRORS


def __getattr__(name: str) -> str:
    if name == "__version__":  # from the installed distribution's metadata
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("rag")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(name)

__all__ = ["ABSTAIN", "DISAGREE_LABEL", "EXTRACTIVE_LABEL", "RUNTIME_ERRORS", "USAGE_ERRORS",
           "USER_ERRORS", "Answer", "Assistant",
           "BackendError", "Chunk", "Citation", "DocumentInfo", "IngestBusy", "IngestReport",
           "LoadError", "ModelError", "Passage", "QuestionError", "Removal", "Settings",
           "StoreError", "UnknownDocument"]
