"""End to end on the default article with the real embedded models (embedder + 1.5B GGUF)."""

import json
import os
import subprocess
import sys

import pytest

from rag import Assistant

from .conftest import ARTICLE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def assistant(article_settings, embeddings):
    a = Assistant(article_settings, embeddings=embeddings)
    a.ingest(progress=False)
    return a


def source_text(settings, citation):
    return (settings.corpus_dir / citation.source).read_text()


def test_boeing_deal_amount_is_answered_with_the_quote(assistant, article_settings):
    answer = assistant.ask("How much is the Boeing deal worth?")
    assert not answer.abstained
    assert "3.2 billion" in answer.text
    assert any("$3.2 billion" in c.quote for c in answer.citations)
    for c in answer.citations:
        assert source_text(article_settings, c)[c.start:c.end] == c.quote


def test_capital_of_tajikistan_abstains(assistant):
    answer = assistant.ask("What is the capital of Tajikistan?")
    assert answer.abstained and not answer.citations
    assert "Dushanbe" not in answer.text


def test_emily_harding_is_cited_from_the_atlantic_council_sentence(assistant):
    answer = assistant.ask("What does Dr. Emily Harding warn about?")
    assert not answer.abstained
    assert any("Atlantic Council" in c.quote or "human rights" in c.quote
               for c in answer.citations)
    harding = [c for c in answer.citations if "Harding" in c.quote or "human rights" in c.quote]
    assert harding, answer.citations


def test_every_sentence_of_an_answer_carries_a_citation(assistant):
    answer = assistant.ask("Which minerals does Tajikistan have?")
    assert not answer.abstained
    from rag.text import sentence_spans
    for a, b in sentence_spans(answer.text):
        sentence = answer.text[a:b]
        if not sentence.startswith("Note:"):
            assert "[" in sentence and "]" in sentence, sentence


def test_cli_ask_json_has_exactly_the_documented_shape(article_settings, tmp_path):
    env = dict(os.environ, RAG_STORE_DIR=str(article_settings.store_dir),
               RAG_CORPUS_DIR=str(article_settings.corpus_dir))
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "How much is the Boeing deal "
                          "worth?", "--json"], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=600, check=True)
    data = json.loads(out.stdout)
    assert set(data) == {"answer", "abstained", "fallback", "citations", "seconds"}
    assert isinstance(data["seconds"], float) and data["abstained"] is False
    for c in data["citations"]:
        assert set(c) == {"n", "source", "chunk_id", "start", "end", "quote"}
        assert ARTICLE.read_text()[c["start"]:c["end"]] == c["quote"]
