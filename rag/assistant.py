"""The pipeline composed in one place: retrieve -> gate -> generate -> check -> Answer."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

from langchain_core.runnables import Runnable, RunnableLambda

from .embeddings import LocalEmbeddings, default_embeddings
from .generation import LLM, NOT_FOUND, BackendError, build_messages, make_llm
from .ingestion import IngestReport, ingest
from .models import ModelError
from .retrieval import HybridRetriever, HybridSearcher
from .settings import Settings
from .store import ChunkStore
from .text import STOPWORDS, normalize, words
from .types import Answer, Passage
from .verify import Checked, Checker, assemble

ABSTAIN = "The documents don't say."
FALLBACK_LABEL = ("The language model is unavailable, so this is not an answer: the most relevant "
                  "passages, quoted verbatim")


class QuestionError(ValueError):
    """The question cannot be asked as it is; the message says why."""


class Assistant:
    """Answers questions from the indexed documents, every sentence cited, or abstains.

    >>> assistant = Assistant()                       # default settings and store
    >>> answer = assistant.ask("How much is the Boeing deal worth?")
    >>> answer.text, [c.quote for c in answer.citations]
    """

    def __init__(self, settings: Settings | None = None, llm: LLM | None = None,
                 embeddings: LocalEmbeddings | None = None) -> None:
        self.settings = settings or Settings.load()
        self.embeddings = embeddings or default_embeddings()
        self._llm = llm
        self._searcher: HybridSearcher | None = None
        self.checker = Checker(self.embeddings, self.settings.min_support)

    # -- components, opened lazily ---------------------------------------------------------
    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = make_llm(self.settings)
        return self._llm

    @property
    def searcher(self) -> HybridSearcher:
        if self._searcher is None:
            self._searcher = HybridSearcher(ChunkStore(self.settings), self.embeddings,
                                            self.settings)
        return self._searcher

    def retriever(self) -> HybridRetriever:
        """The hybrid search as a LangChain ``BaseRetriever``."""
        return HybridRetriever(searcher=self.searcher, k=self.settings.k)

    def as_runnable(self) -> Runnable[str, Answer]:
        """The whole chain as a LangChain ``Runnable``: question in, ``Answer`` out."""
        return RunnableLambda(self.ask, name="cited_answer")

    def warm_up(self) -> None:
        """Load the embedder, the index and the LLM now rather than on the first question."""
        self.searcher.lexical()
        self.embeddings.encode(["warm up"])
        self.llm.warm_up()

    # -- the three things users do ---------------------------------------------------------
    def ingest(self, paths: list[Path] | None = None, rebuild: bool = False,
               progress: bool = True) -> IngestReport:
        report = ingest(paths, self.settings, self.embeddings, rebuild=rebuild, progress=progress)
        self._searcher = None  # reopen: a rebuild replaces the collection
        return report

    def retrieve(self, question: str, k: int | None = None) -> list[Passage]:
        return self.searcher.search(clean_question(question, self.settings.max_question_chars),
                                    k)

    def ask(self, question: str, on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer ``question``; ``on_token`` receives the model's raw text as it streams."""
        s = self.settings
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        q = clean_question(question, s.max_question_chars)
        passages = self.searcher.search(q, s.k, timings=timings)
        timings["retrieve"] = time.perf_counter() - t0

        unknown = self._unknown_terms(q)
        if is_overview(q):
            passages = self._with_opening(passages)
        elif not self._relevant(q, passages):
            return self._abstain(passages, "gate: nothing relevant retrieved", unknown, timings,
                                 t0)
        elif s.focus_sentences > 0:
            t_focus = time.perf_counter()
            qvec = self.embeddings.encode([q])[0]
            passages = [self.checker.focus(p, qvec, s.focus_sentences) for p in passages]
            timings["focus"] = time.perf_counter() - t_focus

        t_prompt = time.perf_counter()
        messages = build_messages(q, passages)
        t1 = time.perf_counter()
        timings["gate"] = t_prompt - t0 - timings["retrieve"] - timings.get("focus", 0.0)
        timings["prompt"] = t1 - t_prompt
        pieces: list[str] = []
        try:
            for piece in self.llm.stream(messages, s.max_tokens):
                if not pieces:
                    timings["first_token"] = time.perf_counter() - t1
                pieces.append(piece)
                if on_token:
                    on_token(piece)
        except (BackendError, ModelError) as exc:
            return self._fallback(q, passages, exc, timings, t0)
        output = "".join(pieces).strip()
        timings["generate"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        if not output or normalize(NOT_FOUND) in normalize(output).replace("_", " "):
            checked, reason = Checked(), "model: not in the documents"
        else:
            topic = self.searcher.lexical().common_terms(q)
            checked, reason = self.checker.check(output, passages, question=q, topic=topic), ""
        timings["check"] = time.perf_counter() - t2
        dropped = [f"{text} ({why})" for text, why in checked.dropped]
        if not checked.sentences:
            answer = self._abstain(passages, reason or "checker: no sentence was supported",
                                   unknown, timings, t0)
            answer.dropped, answer.raw = dropped, output
            return answer
        text, citations = assemble(checked)
        if unknown:
            text = f"{premise_note(unknown)} {text}"
        timings["total"] = time.perf_counter() - t0
        return Answer(text, False, citations, passages, dropped=dropped, raw=output,
                      timings=_round(timings))

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Yield the model's raw text as it is generated, then the checked ``Answer``."""
        import queue
        import threading

        q: queue.Queue = queue.Queue()
        result: dict[str, Answer | BaseException] = {}

        def run() -> None:
            try:
                result["answer"] = self.ask(question, on_token=q.put)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = exc
            finally:
                q.put(None)

        threading.Thread(target=run, daemon=True).start()
        while (piece := q.get()) is not None:
            yield piece
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        yield result["answer"]  # type: ignore[misc]

    # -- helpers ---------------------------------------------------------------------------
    def _relevant(self, question: str, passages: list[Passage]) -> bool:
        """The gate: some passage is semantically close, or the question names something
        rare in the corpus (dense similarity is weak on bare names like 'Almas Miriev')."""
        if not passages:
            return False
        best = max(p.dense_score or 0.0 for p in passages)
        return best >= self.settings.min_relevance or bool(
            self.searcher.lexical().rare_terms(question))

    def _with_opening(self, passages: list[Passage]) -> list[Passage]:
        """For 'summarise / main point' questions: the opening chunk of the best-matching
        source states the thesis, so it leads the context."""
        if not passages:
            return passages
        first = self.searcher.lexical().first_chunk(passages[0].source)
        if first is None or any(p.chunk_id == first.id for p in passages):
            return passages
        lead = Passage(first.id, first.source, first.start, first.end, first.text, rank=0)
        return [lead, *passages[: self.settings.k - 1]]

    def _unknown_terms(self, question: str) -> list[str]:
        """Names and figures in the question that occur nowhere in the corpus (false-premise
        signals such as 'Airbus' or '2015')."""
        lexical = self.searcher.lexical()
        out = []
        for m in _NAME_OR_FIGURE.finditer(question):
            term = m.group(0)
            if _SENTENCE_START.search(question[:m.start()]):
                # a capital that only starts a sentence is no name: 'Did Airbus' -> 'Airbus'
                term = term.split(maxsplit=1)[1] if " " in term else ""
            if not term or normalize(term) in STOPWORDS:
                continue
            if all(lexical.knows(w) for w in words(term)):
                continue
            if term not in out:
                out.append(term)
        return out

    def _fallback(self, question: str, passages: list[Passage], error: Exception,
                  timings: dict[str, float], t0: float) -> Answer:
        """No model answer: the closest sentences of the top passages, verbatim and labelled."""
        text, citations = assemble(self.checker.best_quotes(question, passages))
        timings["total"] = time.perf_counter() - t0
        label = f"{FALLBACK_LABEL} ({error})."
        return Answer(f"{label} {text}" if citations else f"{label} {ABSTAIN}", not citations,
                      citations, passages, reason=f"backend: {error}", fallback=True,
                      timings=_round(timings))

    def _abstain(self, passages: list[Passage], reason: str, unknown: list[str],
                 timings: dict[str, float], t0: float) -> Answer:
        timings["total"] = time.perf_counter() - t0
        text = f"{ABSTAIN[:-1]}: they don't mention {', '.join(unknown)}." if unknown else ABSTAIN
        return Answer(text, True, [], passages, reason=reason, timings=_round(timings))


_NAME_OR_FIGURE = re.compile(r"\b[A-Z][\w-]*[A-Za-z0-9](?:\s+[A-Z][\w-]*[A-Za-z0-9])*|"
                             r"\$?\d{3,}(?:\.\d+)?|\$?\d+\.\d+")
_SENTENCE_START = re.compile(r"(^|[.!?:;]\s+)\W*$")
_OVERVIEW = re.compile(r"\b(summar\w*|overview|gist|main (point|argument|idea|message|thesis)|"
                       r"what is (the|this) (article|document|text|piece) about|tl;?dr)\b", re.I)


def is_overview(question: str) -> bool:
    return bool(_OVERVIEW.search(question))


def premise_note(unknown: list[str]) -> str:
    names = ", ".join(unknown)
    return f"Note: the documents don't mention {names}."


def clean_question(question: str, max_chars: int) -> str:
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    q = "".join(ch if unicodedata.category(ch)[0] != "C" or ch in "\n\t" else " "
                for ch in question)
    q = re.sub(r"\s+", " ", q).strip()
    if not q:
        raise QuestionError("the question is empty: type a question about the documents")
    if not re.search(r"\w", q):
        raise QuestionError("the question has no words: type a question about the documents")
    if len(q) > max_chars:
        raise QuestionError(f"the question is {len(q):,} characters long; the limit is "
                            f"{max_chars:,}: shorten it")
    return q


def _round(t: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in t.items()}

