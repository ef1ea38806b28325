"""The premise check (rag/grounding/premise.py): what a question takes for granted, and the
correction when the documents do not bear it out. The verifier is scripted here (its yes/no
reading of real quotes is measured by the eval's false_premise items); the quotes, offsets and
the answer's shape are real."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Assistant
from rag.generation import BackendError
from rag.grounding.premise import PremiseCheck, presuppositions
from rag.questions import question_parts

from .conftest import PROJECT, FakeLLM


@pytest.mark.parametrize(("question", "assumed"), [
    ("Why does the bridge carry only two lanes?", ["Does the bridge carry only two lanes?"]),
    ("So why, according to the article, did the crew stop painting?",
     ["Did the crew stop painting?"]),
    ("Why did the bridge cost so much, according to the documents?",
     ["Did the bridge cost so much?"]),
    ("Why does Amundsen say the overrun mattered, and where does he work?",
     ["Does Amundsen say the overrun mattered?"]),
    ("What did Felix Amundsen of the Harbor Authority say?",
     ["Is Felix Amundsen of the Harbor Authority?"]),
    ("What did Margit Oduya from Larkspur University design?",
     ["Is Margit Oduya from Larkspur University?"]),
    ("What does Larkspur historian Felix Amundsen say about the cost?",
     ["Is Felix Amundsen a Larkspur historian?"]),
    ("What did Felix Amundsen say about the cost?",  # checked for misattribution only
     ["Did Felix Amundsen say anything about the cost?"]),
    ("How did the crew's loss of funding stop the painting?",  # read, never put to the model
     ["Did the crew's loss of funding stop the painting?"]),
    ("Given the council's ten-year budget, what did the painters cost?",
     ["Do the documents speak of the council's ten-year budget?"]),
    ("Since the bridge carries only two lanes, how do trucks cross?",
     ["Is it true that the bridge carries only two lanes?"]),
    ("When Larkspur first opened the bridge in 1990, who designed it?",
     ["Is it true that Larkspur first opened the bridge in 1990?"]),
    ("What did Mayor Felix Amundsen say about the cost?",
     ["Did Mayor Felix Amundsen say anything about the cost?", "Is Felix Amundsen the Mayor?"]),
    ("What explains the ten years the crew spent painting?",
     ["Do the documents speak of the ten years the crew spent painting?"]),
    ("What's the reason behind the ten years the crew spent painting?",
     ["Do the documents speak of the ten years the crew spent painting?"]),
    ("What are the reasons for the delay?", ["Do the documents speak of the delay?"]),
    # no assumption to check
    ("When did the bridge open?", []),
    ("Since when has the bridge been open, and who paints it?", []),
    ("Since 1990, who has painted the bridge?", []),
    ("How many painters maintain the bridge?", []),
    ("What did President Ilves of Estonia say?",  # a place, not an organisation
     ["Is Ilves the President?"]),
    ("Who is Felix Amundsen?", []),
])
def test_the_assumption_of_a_question_in_its_own_words(question, assumed):
    assert [p.question for p in presuppositions(question)] == assumed


class Verifier:
    """A scripted yes/no model that records what it was shown."""

    name = "verifier"

    def __init__(self, reply: str | Exception) -> None:
        self.reply, self.calls = reply, []

    def warm_up(self) -> None:
        pass

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        self.calls.append(messages[-1]["content"])
        if isinstance(self.reply, Exception):
            raise self.reply
        yield self.reply


def with_premise_check(make, reply: str | Exception, *outputs: str):  # noqa: ANN201
    assistant, llm = make(*outputs)
    verifier = Verifier(reply)
    assistant.premise_check = PremiseCheck(verifier, assistant.embeddings,
                                           assistant.checker.quotes)
    return assistant, llm, verifier


def test_a_false_premise_is_corrected_with_the_closest_sentences_and_no_answer_is_written(make):
    assistant, llm, verifier = with_premise_check(make, "No")
    answer = assistant.ask("Why does the bridge carry only two lanes of traffic?")
    assert llm.calls == []  # the model never explained the false assumption
    assert not answer.abstained and answer.text.startswith("Not according to the documents")
    assert answer.premise == "Does the bridge carry only two lanes of traffic?"
    assert "Does the bridge carry only two lanes of traffic?" in verifier.calls[0]
    quotes = [c.quote for c in answer.citations]
    assert any("eight lanes of road traffic" in q for q in quotes), quotes
    for c in answer.citations:  # verbatim, with the source's offsets
        source = (assistant.settings.corpus_dir / c.source).read_text()
        assert source[c.start:c.end] == c.quote
        assert f"\u201c{c.quote.rstrip('.')}\u201d" in answer.text
    assert answer.to_dict()["premise"] == answer.premise


def test_a_premise_that_holds_is_answered_as_usual(make):
    assistant, llm, _ = with_premise_check(
        make, "Yes", "The bridge opened in 1932 after eight years of construction [1].")
    answer = assistant.ask("Why did the bridge open in 1932?")
    assert len(llm.calls) == 1 and not answer.premise
    assert "1932" in answer.text and "premise" not in answer.to_dict()


def test_an_unavailable_verifier_leaves_the_question_to_the_model(make):
    assistant, llm, verifier = with_premise_check(
        make, BackendError("down"), "The bridge carries eight lanes of road traffic [1].")
    answer = assistant.ask("Why does the bridge carry only two lanes of traffic?")
    assert verifier.calls and len(llm.calls) == 1 and not answer.premise


def test_a_misplaced_person_is_corrected_from_their_own_sentence_without_the_model(make):
    assistant, llm, verifier = with_premise_check(make, "Yes")
    answer = assistant.ask("What did Felix Amundsen of the Tern Ferry Company say?")
    assert verifier.calls == [] and llm.calls == []
    assert answer.premise == "Is Felix Amundsen of the Tern Ferry Company?"
    assert any("a historian at Larkspur University" in c.quote for c in answer.citations)


def test_a_correctly_placed_person_is_answered_as_usual(make):
    assistant, llm, verifier = with_premise_check(
        make, "No", "Amundsen notes that the overrun nearly bankrupted the harbor authority [1].")
    answer = assistant.ask("What did Felix Amundsen of Larkspur University say?")
    assert verifier.calls == [] and len(llm.calls) == 1 and not answer.premise


def test_an_assumption_naming_what_the_corpus_never_mentions_does_not_hold(make):
    assistant, llm, verifier = with_premise_check(make, "Yes")
    answer = assistant.ask("Why did the bridge open in 1951?")  # 1951 is the ferry's year...
    assert len(verifier.calls) == 1 and not answer.premise  # ... so it is known: the model
    answer = assistant.ask("Why did the Zephyr Company build the bridge?")  # reads it
    assert len(verifier.calls) == 1 and answer.premise
    assert answer.text.startswith("Not according to the documents, which don't mention Zephyr")


def test_a_question_without_an_assumption_never_asks_the_verifier(make):
    assistant, llm, verifier = with_premise_check(make, "No", "It opened in 1932 [1].")
    assistant.ask("When did the bridge open?")
    assert verifier.calls == [] and len(llm.calls) == 1


# -- the form of the answer a question asks for (rag/questions.py, generation.parts_hint) ------
@pytest.mark.parametrize(("question", "parts"), [
    ("Which two experts are quoted, and where does each work?",
     ["Which two experts are quoted?", "Where does each work?"]),
    ("Who designed the bridge; when did it open?", ["Who designed the bridge?",
                                                    "When did it open?"]),
    ("How long is the bridge? And who paid for it?", ["How long is the bridge?",
                                                      "Who paid for it?"]),
    ("Who designed and built the bridge?", ["Who designed and built the bridge?"]),
    ("How long is the bridge, how long is the tunnel, and how long is the ferry ride?",
     ["How long is the bridge?", "How long is the tunnel?", "How long is the ferry ride?"]),
    ("When the bridge opened in 1932, what did it carry?",  # a clause first, then the question
     ["When the bridge opened in 1932, what did it carry?"]),
    ("Who paid, in the end, for the bridge?", ["Who paid, in the end, for the bridge?"]),
    ("Which company built the bridge, which cost 6.25 million pounds?",  # a relative clause
     ["Which company built the bridge, which cost 6.25 million pounds?"]),
    ("When did the bridge open?", ["When did the bridge open?"]),
])
def test_the_parts_of_a_question(question, parts):
    assert question_parts(question) == parts


class Recording(FakeLLM):
    def __init__(self, *outputs: str) -> None:
        super().__init__(*outputs)
        self.budgets: list[int] = []

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        self.budgets.append(max_tokens)
        return super().stream(messages, max_tokens)


def test_a_question_of_two_parts_asks_for_both(settings, embeddings):
    llm = Recording("Margit Oduya was the chief engineer [1]. It opened in 1932 [1].",
                    "It opened in 1932 [1].")
    assistant = Assistant(settings, llm=llm, embeddings=embeddings)
    assistant.ingest(progress=False)
    answer = assistant.ask("Who was the chief engineer, and when did the bridge open?")
    assert "Oduya" in answer.text and "1932" in answer.text
    prompt = llm.calls[0][-1]["content"]
    assert "The question has 2 parts: (1) Who was the chief engineer? (2) When did the bridge " \
           "open? Answer each part in its own sentence." in prompt
    assistant.ask("When did the bridge open?")
    assert "parts" not in llm.calls[1][-1]["content"]
    assert llm.budgets == [settings.max_tokens] * 2  # no longer answers: each token ~70 ms


@pytest.mark.parametrize(("question", "overview"), [
    ("What are the main points of the article?", True),  # a plural was missed before
    ("What is the main argument of the piece?", True),
    ("Give me the key takeaways.", True),
    ("Summarize the security side of the relationship.", True),
    ("Trace how the report treats the tunnel, from its purpose to its risks.", True),
    ("How does the article portray the council's budget?", True),
    ("What role does the council play throughout the report?", True),
    ("Sum up what the tunnel brings to the city, and what it risks.", True),
    ("In a nutshell, what does the opening paragraph set up?", True),
    ("Give me the short version of this piece.", True),
    ("Can you break the report down for me?", True),
    ("Where does the council come in? Pull together everything the report says about it.",
     True),
    ("What's the bottom line of the last paragraph?", True),
    ("What does this report actually tell me about the city itself?", True),
    ("If you were briefing a mayor, what cautions would you pass on?", True),
    ("What does the report say the tunnel cost?", False),
    ("What is the line at the bottom of the map?", False),
    ("What does the report tell us about the tunnel cost?", False),
    ("What did the mayor say when briefing a council committee?", False),
    ("Which towns pulled together after the flood?", False),
    ("How did the tolls hit the company's bottom line?", False),
    ("The piece says the tunnel highlights an investment in what?", False),
    ("What does the council's summit sum?", False),
    ("Why did the talks on the tunnel break down?", False),
    ("How does the bridge carry trains?", False),
    ("Who is the key player in the deal?", False),
    ("What is the main river of the country?", False),
])
def test_overview_questions(question, overview):
    from rag.questions import is_overview

    assert is_overview(question) is overview


@pytest.mark.parametrize(("question", "asked"), [
    ("What does the opening paragraph set up, and how does the closing paragraph end?", [0, -1]),
    ("Can you boil down the first two paragraphs for me?", [0, 1]),
    ("Summarize the second and third paragraphs.", [1, 2]),
    ("What do the last two paragraphs say?", [-2, -1]),
    ("What's the bottom line of the final paragraph?", [-1]),
    ("What is in paragraph 3?", [2]),
    ("Summarize paragraphs 2-4.", [1, 2, 3]),
    ("What does the article say about the first bridge?", []),
])
def test_the_paragraphs_a_question_names(question, asked):
    from rag.questions import paragraphs_asked

    assert paragraphs_asked(question) == asked


def test_a_question_about_one_paragraph_is_answered_from_that_paragraph(tmp_path, embeddings):
    from rag import Settings
    from rag.assistant import paragraph_spans

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source = Path(__file__).parent / "fixtures" / "corpus" / "harbor-bridge.md"
    (corpus / "bridge.md").write_text(source.read_text())
    settings = Settings.load(corpus_dir=corpus, store_dir=tmp_path / "store",
                             model_dir=PROJECT / ".rag" / "models")
    llm = Recording("It carries eight lanes of road traffic [1].", "A repaint takes ten years [1].")
    assistant = Assistant(settings, llm=llm, embeddings=embeddings)
    assistant.ingest(progress=False)
    answer = assistant.ask("What does the second paragraph say?")
    prompt = llm.calls[0][-1]["content"]
    assert "eight lanes" in prompt and "1932" not in prompt and "painters" not in prompt
    assert "eight lanes" in answer.text and answer.citations
    assistant.ask("And what is in the final paragraph?")
    prompt = llm.calls[1][-1]["content"]
    assert "painters" in prompt and "eight lanes" not in prompt
    # read from the chunks alone (the file gone), the paragraphs are the same
    chunks = sorted(assistant.searcher.lexical().chunks(), key=lambda c: c.start)
    text = (corpus / "bridge.md").read_text()
    assert paragraph_spans(chunks) == paragraph_spans(chunks, text)
    assert [text[a:b][:14] for a, b in paragraph_spans(chunks, text)] == [
        "The Kestrel Ha", "The bridge car", "Maintenance is"]


@pytest.mark.parametrize(("question", "answer", "kind", "gives_it"), [
    ("When did the president come to power?", "Emomali Rahmon.", "time", False),
    ("When did the president come to power?", "He has held power since 1992.", "time", True),
    ("In what year did the bridge open?", "Over the past six months.", "time", True),
    ("How many aircraft is it buying?", "It is buying $3.2 billion worth of aircraft.", "count",
     False),  # a money amount is no count
    ("How many aircraft is it buying?", "3.2 billion dollars' worth.", "count", False),
    ("How many boats did the ferry run?", "It ran forty boats.", "count", True),
    ("Over how many years will the ferry run?", "It will run until the council decides.",
     "count", False),
    ("How much is the deal worth?", "$3.2 billion.", "money", True),
    ("How much is the deal worth?", "A great deal.", "money", False),
    # a figure that is no sum of money answers no question about investment
    ("How much is the ferry company investing in the island?", "Alongside a commitment to 1 GW "
     "of wind power, the ferry company signed.", "money", False),
    ("How much is the ferry company investing in the island?", "It is putting 40 million "
     "euros into new boats.", "money", True),
    ("How much wind power has been committed?", "A commitment to 1 GW of wind power.", "amount",
     True),
    ("How much time did the crew spend painting?", "Three years.", "amount", True),
    ("How much attention does the report pay to water?", "Little: 5 percent.", "amount", True),
    ("Roughly what share of the world's tin could the mine supply?", "The mine holds "
     "significant deposits of tin.", "amount", False),
    ("What dollar amount does the report put on the bridge?", "It cost 6.25 million pounds.",
     "amount", True),
    ("What value does the council place on safety?", "It calls safety paramount.", "", True),
    ("Who designed the bridge?", "Margit Oduya.", "name", True),
    ("Who designed the Calder bridge?", "The Calder bridge was designed in 2019.", "name", False),
    ("Which city agency inspects the Calder bridge?", "The city inspects the bridge yearly, "
     "and the Calder council pays for it.", "name", False),
    ("Which city agency inspects the Calder bridge?", "Ultimately the Harbour Board does.",
     "name", True),
    ("Which two experts are quoted?", "Dr. Ana Ruiz and Dr. Tom Hale.", "name", True),
    ("In which city will the Calder hub be based?", "The Calder hub will be based in the "
     "country.", "name", False),
    ("On which river is the dam?", "It stands on the Vakhsh.", "name", True),
    ("In which part of the country's network is the Calder bridge?", "In its rail network.", "",
     True),
    ("Which U.S. agency inspects the Calder bridge?", "The U.S. inspects the Calder bridge.",
     "name", False),
    ("When the Calder bridge first opened, what did it carry?", "Two lanes of traffic.", "",
     True),  # an assumption stated first: the question is what follows it
    ("What does the bridge cost?", "A great deal.", "", True),
])
def test_what_a_question_asks_for_and_whether_an_answer_gives_it(question, answer, kind,
                                                                   gives_it):
    from rag.questions import asks_for, gives

    assert asks_for(question) == kind
    assert gives(kind, answer, question) is gives_it


BAKERY = ("The Orwell Bakery opened a $2 million oven hall in 2019. Its flour comes from the "
          "Skye mill, which grinds 40 kg an hour.")


@pytest.mark.parametrize(("question", "unknown", "said"), [
    ("Who built the $5 million oven hall at the Orwell Bakery?", ["$5"], "they say “$2 million”"),
    ("How old is the mill that grinds 60 kg for the Orwell Bakery?", ["60"], None),  # no Skye
    ("How old is the Skye mill that grinds 60 kg an hour?", ["60"], "they say “40 kg”"),
    ("What did the Orwell Bakery open in 2015?", ["2015"], None),  # a year dates the question
    ("Who built the $5 million oven hall at the Calder Bakery?", ["$5", "Calder"], None),
])
def test_a_figure_the_question_has_wrong(embeddings, question, unknown, said):
    from rag.grounding.quotes import QuoteIndexer
    from rag.types import Passage

    check = PremiseCheck(Verifier("Yes"), embeddings, QuoteIndexer(embeddings))
    verdict = check.other_figure(question, [Passage("b1", "bakery.txt", 0, len(BAKERY), BAKERY)],
                                 unknown)
    assert (verdict.why if verdict else None) == said
    if verdict:
        assert not verdict.holds
        passage, span = verdict.evidence[0]
        assert said[-3:-1] in passage.text[span.start:span.end]


@pytest.mark.parametrize(("question", "answer", "echo"), [
    ("Where in the harbor will the new tunnel be built?",
     "The new tunnel will be built in the harbor [1].", True),
    ("Why did the bridge cost twice the estimate?", "The bridge cost twice the estimate [1].",
     True),
    ("How many lanes does the bridge carry?", "The bridge carries lanes [2].", True),  # not "2"
    ("Why did the bridge cost twice the estimate?",
     "The bridge cost twice the original estimate because of the overrun [1].", False),
    ("Who designed the bridge?", "Margit Oduya designed the bridge [1].", False),
    ("When did the bridge open?", "The bridge opened in 1932 [1].", False),
    ("Did the bridge open in 1932?", "The bridge opened in 1932 [1].", False),  # yes/no
    ("Which opened first, the bridge or the tunnel?", "The bridge opened first [1].", False),
])
def test_an_answer_that_only_restates_the_question(question, answer, echo):
    from rag.questions import restates

    assert restates(question, answer) is echo


def test_a_cited_sentence_that_only_restates_the_question_is_no_answer(settings, embeddings):
    assistant = Assistant(settings, llm=Recording("The bridge stands in the harbor [1]."),
                          embeddings=embeddings)
    assistant.ingest(progress=False)
    answer = assistant.ask("Where in the harbor does the bridge stand?")
    assert "The bridge stands in the harbor" not in answer.text
    assert any("only restates the question" in d for d in answer.dropped)


TUNNEL = ("The council approved the tunnel in 2019. “The tunnel will halve commuting times,” "
          "argues Dr. Ana Ruiz, an engineer at Calder University. “It will also cut emissions "
          "along the coast.” Dr. Tom Hale, a fellow at the Meridian Institute, notes, “The cost "
          "overruns could sink the city budget.” The painters cannot finish the tunnel's murals "
          "before 2030.")


@pytest.fixture
def tunnel_check(embeddings):  # noqa: ANN201
    from rag.grounding.quotes import QuoteIndexer
    from rag.types import Passage

    verifier = Verifier("Yes")  # says yes to anything: the verdicts below are not the model's
    check = PremiseCheck(verifier, embeddings, QuoteIndexer(embeddings))
    return check, [Passage("t1", "tunnel.txt", 0, len(TUNNEL), TUNNEL)], verifier


@pytest.mark.parametrize(("question", "speaker", "named_in"), [
    ("Why does Tom Hale say the tunnel will halve commuting times?", "Ruiz", ["halve"]),
    # a quote after the sentence that names its speaker is still theirs
    ("Why does Tom Hale say the tunnel will cut emissions along the coast?", "Ruiz",
     ["cut emissions", "argues Dr. Ana Ruiz"]),
    ("What did Ana Ruiz say about the cost overruns?", "Hale", ["cost overruns"]),
])
def test_a_claim_credited_to_the_wrong_speaker_does_not_hold(tunnel_check, question, speaker,
                                                             named_in):
    check, passages, verifier = tunnel_check
    [premise] = presuppositions(question)
    verdict = check(premise, passages)
    assert verdict is not None and not verdict.holds
    assert verdict.why == f"they attribute this to {speaker}"
    quotes = [p.text[s.start:s.end] for p, s in verdict.evidence]
    assert [any(n in q for q in quotes) for n in named_in] == [True] * len(named_in), quotes
    assert verifier.calls == []


@pytest.mark.parametrize("question", [
    "Why does Ana Ruiz say the tunnel will cut emissions along the coast?",
    "Why does Tom Hale say the overruns could sink the city budget?",
])
def test_a_claim_credited_to_its_speaker_goes_to_the_model(tunnel_check, question):
    check, passages, verifier = tunnel_check
    [premise] = presuppositions(question)
    verdict = check(premise, passages)
    assert verdict is not None and verdict.holds and len(verifier.calls) == 1


def test_what_a_speaker_said_about_a_topic_they_did_speak_on_is_never_put_to_the_model(
        tunnel_check):
    check, passages, verifier = tunnel_check
    [premise] = presuppositions("What did Tom Hale say about the cost overruns?")
    assert check(premise, passages) is None and verifier.calls == []


def test_a_closest_sentence_that_denies_the_assumption_needs_no_model(tunnel_check):
    check, passages, verifier = tunnel_check
    [premise] = presuppositions("Why can the painters finish the tunnel's murals before 2030?")
    verdict = check(premise, passages)
    assert verdict is not None and not verdict.holds and verifier.calls == []
    assert verdict.why == "they say “cannot finish”"
    assert "cannot finish" in verdict.evidence[0][0].text[verdict.evidence[0][1].start:
                                                          verdict.evidence[0][1].end]


def test_the_assumption_of_a_how_question_is_read_and_never_put_to_the_model(tunnel_check):
    check, passages, verifier = tunnel_check
    [false] = presuppositions("How can the painters finish the tunnel's murals before 2030?")
    verdict = check(false, passages)
    assert verdict is not None and not verdict.holds and verdict.why == "they say “cannot finish”"
    [true] = presuppositions("How will the tunnel halve commuting times?")
    assert check(true, passages) is None and verifier.calls == []


ISLAND = ("The island has two thousand residents. The ferry service represents the backbone of "
          "the island economy. Its Tidewater boats run every hour in summer. The Orwell Bakery, "
          "while popular with tourists, is unlikely to change how residents earn a living. Fog "
          "closes the harbour a few days each winter.")


@pytest.mark.parametrize(("question", "holds"), [
    # what the documents say of the ferry, asked of the bakery: no model needed
    ("Why does the author consider the Orwell Bakery the backbone of the island economy?",
     False),
    ("Why does Orwell Bakery count as the backbone of the island economy?", False),
    ("Why is the ferry service the backbone of the island economy?", True),  # to the model
    # the name stands in the sentence right after: said of it (its boats), to the model
    ("Why is the Tidewater service the backbone of the island economy?", True),
    # a name after what is said ("the economy of …") is not what it is said of
    ("Why is the ferry service the backbone of the economy of Orwell Bakery?", True),
])
def test_a_claim_made_of_another_subject_than_the_documents_make_it_of(embeddings, question,
                                                                       holds):
    from rag.grounding.quotes import QuoteIndexer
    from rag.types import Passage

    verifier = Verifier("Yes")
    check = PremiseCheck(verifier, embeddings, QuoteIndexer(embeddings))
    [premise] = presuppositions(question)
    verdict = check(premise, [Passage("i1", "island.txt", 0, len(ISLAND), ISLAND)])
    assert verdict is not None and verdict.holds is holds
    assert len(verifier.calls) == (1 if holds else 0)
    if not holds:
        assert verdict.why == "they don't say this of Orwell Bakery"
        quotes = [p.text[s.start:s.end] for p, s in verdict.evidence]
        assert "backbone" in quotes[0] and "Orwell Bakery" in quotes[1], quotes


def test_a_name_referred_to_by_a_word_of_it_or_beside_a_missing_sentence_is_not_corrected(
        embeddings):
    from rag.grounding.quotes import QuoteIndexer
    from rag.types import Passage

    check = PremiseCheck(Verifier("Yes"), embeddings, QuoteIndexer(embeddings))
    text = ("The Orwell Bakery opened in 1990. Fog closes the harbour in winter. Tourists queue "
            "for its buns. The bakery is the backbone of the island economy.")
    [premise] = presuppositions("Why is the Orwell Bakery the backbone of the island economy?")
    verdict = check(premise, [Passage("b", "bakery.txt", 0, len(text), text)])
    assert verdict is not None and verdict.holds  # "the bakery": the model was asked
    # the island text without its first sentence: what stood before the closest one is unknown
    start = ISLAND.index("The ferry")
    part = [Passage("i2", "island.txt", start, len(ISLAND), ISLAND[start:])]
    [premise] = presuppositions("Why does the author consider the Orwell Bakery the backbone of "
                                "the island economy?")
    assert check(premise, part).holds
    assert not check(premise, [Passage("i1", "island.txt", 0, len(ISLAND), ISLAND)]).holds


def test_an_assumed_figure_the_closest_sentences_give_otherwise_needs_no_model(tunnel_check):
    check, passages, verifier = tunnel_check
    [wrong] = presuppositions("Why did the council approve the tunnel in 2021?")
    verdict = check(wrong, passages)
    assert verdict is not None and not verdict.holds and verdict.why == "they say “2019”"
    assert verifier.calls == []
    [right] = presuppositions("Why did the council approve the tunnel in 2019?")
    assert check(right, passages).holds and len(verifier.calls) == 1
    [stated] = presuppositions("Given that the council approved the tunnel in 2021, who "
                               "builds it?")  # an assumption stated before the question
    verdict = check(stated, passages)
    assert verdict is not None and not verdict.holds and verdict.why == "they say “2019”"


def test_assumed_figures_the_documents_give_in_two_sentences_are_no_other_figures(tunnel_check):
    check, passages, _ = tunnel_check
    [premise] = presuppositions("Why did the council approve the tunnel in 2019 when its murals "
                                "cannot be finished before 2030?")
    verdict = check(premise, passages)
    assert verdict is None or verdict.holds, verdict


def test_a_correction_says_what_the_documents_give_instead(make):
    assistant, llm, verifier = with_premise_check(make, "Yes")
    answer = assistant.ask("Why did the bridge cost 9 million pounds?")
    assert llm.calls == [] and verifier.calls == []  # the figure is read, nobody is asked
    assert answer.text.startswith("Not according to the documents: they say “6.25 million”. "
                                  "What they say: “"), answer.text
    assert "6.25 million pounds" in answer.citations[0].quote


def test_a_shared_word_does_not_make_a_quote_a_view_on_a_named_topic(tunnel_check):
    from rag.types import Passage

    check, _, _ = tunnel_check
    # one passage per sentence: "Calder University" stands in one of five, Hale's "cost" in his
    cuts = [0] + [TUNNEL.index(s) for s in ("“The tunnel", "“It will", "Dr. Tom", "The painters")]
    passages = [Passage(f"t{i}", "tunnel.txt", a, b, TUNNEL[a:b].strip())
                for i, (a, b) in enumerate(zip(cuts, [*cuts[1:], len(TUNNEL)], strict=True))]
    [premise] = presuppositions("What did Tom Hale say about the cost of the Calder University "
                                "study?")
    verdict = check(premise, passages)
    assert verdict is not None and not verdict.holds, verdict
    [premise] = presuppositions("What did Tom Hale say about the cost of the tunnel?")
    assert check(premise, passages) is None


def test_what_a_speaker_said_about_a_topic_they_never_speak_on_is_refused_with_the_reason(
        tunnel_check):
    check, passages, verifier = tunnel_check
    [premise] = presuppositions("What did Tom Hale say about the murals?")
    verdict = check(premise, passages)
    assert verdict is not None and not verdict.holds and verdict.evidence == []
    assert verdict.why == "they don't quote Tom Hale on the murals" and verifier.calls == []
    # on a topic of a quote that continues after the sentence naming the speaker: it holds
    [premise] = presuppositions("What did Ana Ruiz say about emissions?")
    assert check(premise, passages) is None


def test_a_refusal_for_a_speaker_never_quoted_on_the_topic_says_why(make):
    assistant, llm, verifier = with_premise_check(make, "Yes", "The bridge has eight lanes [1].")
    answer = assistant.ask("What did Felix Amundsen say about the railway tracks?")
    assert answer.abstained and not answer.citations and llm.calls == []
    assert answer.text == ("The documents don't say: they don't quote Felix Amundsen on the "
                           "railway tracks."), answer.text
    answer = assistant.ask("What did Felix Amundsen say about the overrun?")  # he did
    assert not answer.abstained and len(llm.calls) == 1


def test_an_office_the_documents_do_not_give_a_person_does_not_hold(tunnel_check):
    check, passages, verifier = tunnel_check
    [office] = presuppositions("How long has Mayor Ana Ruiz backed the tunnel?")
    verdict = check(office, passages)
    assert verdict is not None and not verdict.holds and verifier.calls == []
    assert any("Dr. Ana Ruiz, an engineer" in p.text[s.start:s.end] for p, s in verdict.evidence)
    [engineer] = presuppositions("How long has Ambassador Tom Hale worked at the institute?")
    assert not check(engineer, passages).holds


def test_an_assumption_the_answer_restated_against_its_quote_does_not_hold():
    from rag.grounding.checker import Support
    from rag.grounding.premise import echoed
    from rag.grounding.quotes import QuoteSpan
    from rag.types import Passage

    passage = Passage("t1", "tunnel.txt", 0, len(TUNNEL), TUNNEL)
    start = TUNNEL.index("The painters")
    span = QuoteSpan(start, len(TUNNEL), start, len(TUNNEL))
    [premise] = presuppositions("Why can the painters finish the tunnel's murals by 2025?")
    restated = [("The painters can finish the tunnel's murals by 2025.",
                 [Support(passage, span, 0.8)])]
    verdict = echoed([premise], restated)
    assert verdict is not None and not verdict.holds
    assert [(p.chunk_id, s) for p, s in verdict.evidence] == [("t1", span)]
    other = [("Ana Ruiz is an engineer.", [Support(passage, span, 0.8)])]
    assert echoed([premise], other) is None  # an answer that does not restate it
    assert echoed([], restated) is None


def test_an_assumed_span_of_time_in_another_unit_is_corrected_with_its_sentence(tunnel_check):
    check, passages, verifier = tunnel_check
    text = ("The crew spent six months painting the tunnel. The council approved the tunnel in "
            "2019. The tunnel's murals show the coast and the old harbour cranes.")
    passages = [type(passages[0])("t2", "crew.txt", 0, len(text), text)]
    [wrong] = presuppositions("What explains the six years the crew spent on the tunnel's "
                              "murals?")
    verdict = check(wrong, passages)
    assert verdict is not None and not verdict.holds and verdict.why == "they say “six months”"
    p, span = verdict.evidence[0]
    assert p.text[span.start:span.end].startswith("The crew spent six months")
    assert verifier.calls == []


@pytest.mark.parametrize(("question", "probes"), [
    ("How well does that square with who runs the country?", True),
    ("My friend says it is landlocked, but the text mentions a coast. Which is it?", True),
    ("Is that consistent with the budget it gives later?", True),
    ("How does the council reconcile the two figures?", True),
    ("Where is the coastline?", False),
    ("How big is the town square?", False),
    ("What squad builds the tunnel?", False),
])
def test_questions_that_ask_whether_the_documents_agree(question, probes):
    from rag.questions import probes_consistency

    assert probes_consistency(question) is probes


def test_who_said_the_quoted_words_is_answered_with_their_speaker(make, corpus):
    """A question that quotes words and asks who said them: an answer naming another speaker
    is not shown; the sentence naming the words' speaker is, verbatim and cited."""
    from rag import EXTRACTIVE_LABEL

    (corpus / "tunnel.txt").write_text(
        "Dr. Ana Ruiz, an engineer at Calder University, argues that the tunnel will halve "
        "commuting times.\n\nDr. Tom Hale, a fellow at the Meridian Institute, notes that the "
        "cost overruns could sink the city budget.\n")
    wrong = "Dr. Ana Ruiz, an engineer at Calder University, argues that the tunnel will halve " \
            "commuting times [1]."
    assistant, _, _ = with_premise_check(make, "Yes", wrong, wrong)
    answer = assistant.ask("Who warned that the 'cost overruns' could sink the budget, and where "
                           "does that person work?")
    assert answer.text.startswith(EXTRACTIVE_LABEL) and "Ruiz" not in answer.text, answer.text
    assert [c.source for c in answer.citations] == ["tunnel.txt"]
    assert "Tom Hale, a fellow at the Meridian Institute" in answer.citations[0].quote
    assert any("another speaker" in d for d in answer.dropped)
    # words the right speaker said, asked of without quoting them: the model's answer stands
    answer = assistant.ask("Who expects the tunnel to halve commuting times?")
    assert "Ruiz" in answer.text and not answer.text.startswith(EXTRACTIVE_LABEL)


@pytest.mark.parametrize(("question", "phrases", "who"), [
    ("Who said the tunnel was a 'costly mistake'?", ["costly mistake"], True),
    ("Whose words are “cannot fundamentally alter”?", ["cannot fundamentally alter"], True),
    ("What does the tunnel's 'strategic value' rest on?", ["strategic value"], False),
    ("Who runs Tajikistan's tunnel?", [], False),  # an apostrophe opens no quotation
    ("Who benefits from the 'toll plan'?", ["toll plan"], False),  # asks about no words said
])
def test_words_a_question_quotes(question, phrases, who):
    from rag.questions import asks_who_said, quoted_phrases

    assert quoted_phrases(question) == phrases and asks_who_said(question) is who


@pytest.mark.parametrize(("question", "asked"), [
    ("What's the bridge worth per year?", ["rate"]),
    ("How many passengers did the ferry carry annually?", ["rate"]),
    ("Which railway viaduct is the largest?", ["rank"]),
    ("Did the bridge cost more than the ferry?", ["rank"]),
    ("Which track is the busiest?", ["rank"]),
    ("Who works at a university rather than a company?", []),
    ("How much did the bridge cost?", []),
    ("What is the bridge's primary purpose?", []),  # the documents' word, no ranking asked
    ("Given its cost per year, why was the bridge built?", []),  # a stated assumption
])
def test_the_rate_or_ranking_a_question_asks_for(question, asked):
    from rag.questions import qualifiers

    assert qualifiers(question) == asked


@pytest.mark.parametrize(("qualifier", "source", "bears_it"), [
    ("rate", "It carried 47,000 passengers a day.", True),
    ("rate", "It cost 6.25 million pounds, twice the original estimate.", False),
    ("rank", "It is the longest bridge in the north.", True),
    ("rank", "It cost more than the ferry.", True),
    ("rank", "The bridge carries eight lanes of road traffic and two railway tracks.", False),
    ("rank", "Interest in the harbor grew in the west.", False),  # -est, no superlative
])
def test_whether_a_source_sentence_states_the_rate_or_ranking(qualifier, source, bears_it):
    from rag.questions import bears

    assert bears(qualifier, source) is bears_it


def test_a_rate_or_ranking_the_quote_does_not_state_is_no_answer(make):
    # the model copies the question's "per year" and "busiest" into sentences whose quotes give
    # a total and a list
    for question, output, why in [
        ("What did the bridge cost per year?",
         "The bridge cost 6.25 million pounds per year [1].", "gives no rate per period"),
        ("Which of the bridge's railway tracks is the busiest?",
         "The bridge carries two railway tracks [1].", "gives no ranking or comparison"),
    ]:
        assistant, _, _ = with_premise_check(make, "No", output)
        answer = assistant.ask(question)
        assert not answer.citations, answer.text
        assert any(why in d for d in answer.dropped), answer.dropped


def test_a_rate_the_quote_states_need_not_be_repeated_in_the_answer(make):
    # the rate is the quote's to give, not the answer's words: "47,000 [1]" answers how many a
    # day when the cited sentence says "a day"
    assistant, _, _ = with_premise_check(make, "Yes", "It carried 47,000 passengers [1].")
    answer = assistant.ask("How many passengers did the ferry carry a day at its peak?")
    assert not answer.abstained and "47,000" in answer.text, (answer.text, answer.dropped)
    assert "a day" in answer.citations[0].quote


@pytest.mark.parametrize(("text", "name"), [
    ("Boeing described the deal as a strategic move [1].", "Boeing"),
    ("According to Dr. Felix Amundsen, the overrun was ruinous [1].", "Dr. Felix Amundsen"),
    ("Dr. Felix Amundsen, a historian at Larkspur University, notes that it cost a lot.",
     "Dr. Felix Amundsen"),
    ("The article says the bridge opened in 1932 [1].", ""),
    ("Larkspur University believes the bridge is vital [1].", ""),  # a view, not a quote
    ("Larkspur University calls for a new bridge [1].", ""),
    ("The bridge carries eight lanes [1].", ""),
])
def test_the_name_a_claim_gives_its_words_to(text, name):
    from rag.grounding.premise import credits

    assert credits(text) == name


@pytest.mark.parametrize(("question", "name"), [
    ("How did Margit Oduya describe the bridge?", "Margit Oduya"),
    ("What does Dr. Felix Amundsen say about the overrun?", "Dr. Felix Amundsen"),
    # a view the author may give a party without quoting it: not asked as their words
    ("What does Larkspur University see in the bridge?", ""),
    ("What does the article say about the overrun?", ""),
    ("How did the bridge change the harbor?", ""),
])
def test_the_party_whose_words_a_question_asks_for(question, name):
    from rag.grounding.premise import asked_speaker

    assert asked_speaker(question) == name


def test_words_given_to_someone_the_quote_does_not_quote_are_dropped(make):
    assistant, _, _ = with_premise_check(
        make, "Yes", "Margit Oduya says she had previously designed two railway viaducts in "
                     "the north [1]. Dr. Felix Amundsen notes that the overrun nearly bankrupted "
                     "the harbor authority [2].")
    answer = assistant.ask("How did Margit Oduya and Felix Amundsen describe the bridge?")
    assert "Margit Oduya says" not in answer.text
    assert any("gives its words to Margit Oduya" in d for d in answer.dropped), answer.dropped
    # Amundsen's sentence is his, by the quote's own "notes"
    assert "nearly bankrupted the harbor authority" in answer.text
    assert any("nearly bankrupted" in c.quote for c in answer.citations)


@pytest.mark.parametrize(("question", "thematic"), [
    ("What are the main risks the report sees in the bridge?", True),
    ("What costs and delays does the article point to?", True),
    ("What does the author expect to happen to the ferry?", True),
    ("What is the author's verdict on the repaint?", True),
    ("What did the bridge cost?", False),
    ("Who designed the bridge, and where does she work?", False),
    ("What does the article say the bridge cost?", False),
])
def test_questions_that_ask_for_every_point_on_a_theme(question, thematic):
    from rag.questions import is_thematic

    assert is_thematic(question) is thematic
