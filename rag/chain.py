"""The assistant as a LangChain ``Runnable`` (``Assistant.as_runnable()``).

Input: a question (``str``), or ``{"question": str, "chat_history": [...]}`` where the chat
history is anything LangChain reads as messages (``HumanMessage``/``AIMessage``, ``("human",
text)``/``("ai", text)`` tuples, ``{"role": ..., "content": ...}`` dicts); its user turns are
the conversation's earlier questions (``Assistant.ask(question, history=...)``: a follow-up that
cannot stand on its own is read with the previous question). Other keys are ignored.

Output: ``invoke`` returns the checked ``Answer``. ``stream``/``astream`` yield the model's raw
text as ``str`` chunks while it is generated, then the checked ``Answer`` as the last chunk (an
abstention before generation yields the ``Answer`` alone); only the ``Answer`` is the answer:
the raw text may hold sentences the checker drops. Retrieval and generation are child runs:
callbacks see ``on_retriever_start/end`` and ``on_chat_model_start``/``on_llm_new_token``/
``on_llm_end`` under the chain's run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired

from langchain_core.messages import MessageLikeRepresentation, convert_to_messages
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from typing_extensions import TypedDict

from .types import Answer

if TYPE_CHECKING:
    from .assistant import Assistant


class QuestionInput(TypedDict):
    """A question and, optionally, the conversation before it."""

    question: str
    chat_history: NotRequired[Sequence[MessageLikeRepresentation]]


ChainInput = str | QuestionInput


def parse_input(value: Any) -> tuple[str, list[str]]:
    """(question, earlier questions) from any input shape the runnable accepts."""
    if isinstance(value, str):
        return value, []
    if isinstance(value, Mapping):
        if "question" not in value:
            raise ValueError(f"the input needs a 'question' key; got keys {sorted(value)}")
        history = value.get("chat_history") or []
        if isinstance(history, str):
            raise ValueError("chat_history must be a list of messages, not a string")
        return value["question"], [str(m.text) for m in convert_to_messages(history)
                                   if m.type == "human"]
    raise TypeError(f"expected a question (str) or {{'question': ..., 'chat_history': [...]}}, "
                    f"got {type(value).__name__}")


class AnswerRunnable(Runnable[ChainInput, Answer]):
    """retrieve -> gate -> generate -> check, as one LangChain ``Runnable`` (see the module)."""

    def __init__(self, assistant: Assistant, name: str = "cited_answer") -> None:
        self.assistant = assistant
        self.name = name

    @property
    def InputType(self) -> Any:  # noqa: N802 - LangChain's name
        return ChainInput

    @property
    def OutputType(self) -> type[Answer]:  # noqa: N802 - LangChain's name
        return Answer

    def invoke(self, input: ChainInput, config: RunnableConfig | None = None,
               **kwargs: Any) -> Answer:
        return self._call_with_config(self._ask, input, config, run_type="chain")

    def _ask(self, value: ChainInput) -> Answer:
        question, history = parse_input(value)
        return self.assistant.ask(question, history=history or None)

    # -- streaming: str chunks of the model's text, then the Answer -------------------------
    def stream(self, input: ChainInput, config: RunnableConfig | None = None,
               **kwargs: Any) -> Iterator[str | Answer]:  # type: ignore[override]
        yield from self.transform(iter([input]), config, **kwargs)

    def transform(self, input: Iterator[ChainInput], config: RunnableConfig | None = None,
                  **kwargs: Any) -> Iterator[str | Answer]:  # type: ignore[override]
        yield from self._transform_stream_with_config(input, self._stream, config)

    def _stream(self, inputs: Iterator[ChainInput]) -> Iterator[str | Answer]:
        question, history = parse_input(_joined(inputs))
        yield from self.assistant.stream(question, history=history or None)

    async def astream(self, input: ChainInput, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[str | Answer]:  # type: ignore[override]
        async def one() -> AsyncIterator[ChainInput]:
            yield input

        async for chunk in self.atransform(one(), config, **kwargs):
            yield chunk

    async def atransform(self, input: AsyncIterator[ChainInput],
                         config: RunnableConfig | None = None, **kwargs: Any
                         ) -> AsyncIterator[str | Answer]:  # type: ignore[override]
        async for chunk in self._atransform_stream_with_config(input, self._astream, config):
            yield chunk

    async def _astream(self, inputs: AsyncIterator[ChainInput]
                       ) -> AsyncIterator[str | Answer]:
        parts = [value async for value in inputs]
        question, history = parse_input(_joined(iter(parts)))
        chunks = self.assistant.stream(question, history=history or None)
        done = object()
        try:  # the generator blocks on the model: each step runs in a worker thread
            while (chunk := await run_in_executor(None, next, chunks, done)) is not done:
                yield chunk  # type: ignore[misc]
        finally:
            chunks.close()  # a consumer that went away stops generation at the next token


def _joined(inputs: Iterator[Any]) -> Any:
    """Input chunks added up, as LangChain does (a string streamed in pieces, for one)."""
    final: Any = None
    for chunk in inputs:
        if final is None:
            final = chunk
        else:
            try:
                final = final + chunk
            except TypeError:
                final = chunk
    return final
