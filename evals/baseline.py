"""The naive baseline: a textbook LangChain RAG chain (dense top-k from the project's vector
store, through LangChain's ``VectorStore`` interface, stuffed into a prompt, same LLM), with no
gate and no checker."""

from __future__ import annotations

import re
import time

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

from rag import Assistant

from .runs import Run

PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You are an assistant for question-answering tasks. Use the following pieces of "
               "retrieved context to answer the question. If you don't know the answer, just "
               "say that you don't know. Use three sentences maximum and keep the answer "
               "concise. Cite the numbers of the context pieces you use, like [1]."),
    ("human", "Context:\n{context}\n\nQuestion: {question}"),
])
_ABSTAIN = re.compile(r"\b(don't|do not|doesn't|does not) (know|say|mention|provide|contain)|"
                      r"not (mentioned|provided|specified|stated)|no information", re.I)


def _format(docs: list[Document]) -> str:
    return "\n\n".join(f"[{i}] {d.page_content}" for i, d in enumerate(docs, start=1))


class NaiveChain:
    def __init__(self, assistant: Assistant) -> None:
        settings = assistant.settings
        self.llm = assistant.llm
        store = assistant.store.as_langchain(assistant.embeddings)
        retriever = store.as_retriever(search_kwargs={"k": settings.k})
        generate = RunnableLambda(self._generate, name="llm")
        answer = (RunnableLambda(lambda x: {"context": _format(x["docs"]),
                                            "question": x["question"]})
                  | PROMPT | generate | StrOutputParser())
        self.chain = RunnableParallel(docs=retriever,
                                      question=RunnablePassthrough()).assign(answer=answer)
        self.max_tokens = settings.max_tokens

    def _generate(self, prompt_value) -> str:  # noqa: ANN001 - ChatPromptValue
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        messages = [{"role": roles[m.type], "content": m.content}
                    for m in prompt_value.to_messages()]
        t0 = time.perf_counter()
        pieces = []
        for piece in self.llm.stream(messages, self.max_tokens):
            if not pieces:
                self._first = time.perf_counter() - t0
            pieces.append(piece)
        return "".join(pieces)

    def run(self, question: str) -> Run:
        t0 = time.perf_counter()
        self._first = None
        out = self.chain.invoke(question)
        seconds = time.perf_counter() - t0
        docs: list[Document] = out["docs"]
        text = out["answer"].strip()
        citations, cite_text = [], {}
        for n in sorted({int(m) for m in re.findall(r"\[(\d+)\]", text)}):
            if 1 <= n <= len(docs):
                d = docs[n - 1]
                m = d.metadata
                citations.append({"n": n, "source": m["source"], "chunk_id": d.id,
                                  "start": m["start"], "end": m["end"],
                                  "quote": d.page_content})
                cite_text[n] = d.page_content
        return Run(text, bool(_ABSTAIN.search(text)) or not text, citations,
                   {d.id: d.page_content for d in docs}, cite_text,
                   retrieved=[{"chunk_id": d.id} for d in docs], seconds=seconds,
                   first_token=self._first)
