from rag.text import clause_spans, known_word, sentence_spans, words


def spans_text(text):
    return [text[a:b] for a, b in sentence_spans(text)]


def test_sentences_do_not_split_after_abbreviations_or_inside_numbers():
    text = "Dr. Emily Harding spoke. The U.S. paid $3.2 billion. Next one!"
    assert spans_text(text) == ["Dr. Emily Harding spoke.", "The U.S. paid $3.2 billion.",
                                "Next one!"]


def test_line_breaks_end_sentences():
    assert spans_text("Heading\nBody text.") == ["Heading", "Body text."]


def test_words_keep_numbers_and_fold_possessives():
    assert words("The $3.2 billion deal, China’s 1,000 GW") == [
        "the", "3.2", "billion", "deal", "china", "1000", "gw"]


def test_known_word_accepts_other_endings_but_not_other_numbers():
    vocab = {"china", "tajikistan", "u.s.", "1992"}
    assert known_word("chinese", vocab)
    assert known_word("tajik", vocab)
    assert known_word("united", vocab)
    assert not known_word("1991", vocab)
    assert not known_word("airbus", vocab)


def test_clauses_split_at_punctuation():
    text = "“Quote here now,” argues Dr. Almas Miriev, a specialist at Georgetown University."
    got = [text[a:b] for a, b in clause_spans(text, 0, len(text))]
    assert "a specialist at Georgetown University." in got
