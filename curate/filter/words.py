"""datatrove's spaCy word and sentence split, made cheaper without changing a single token.

Where datatrove's time goes (profiled on the demo corpus): about 70% in spaCy's tokenizer. Its `SpaCyTokenizer` opens a
spaCy memory zone on every call, and inside a memory zone spaCy neither keeps lexemes nor uses its tokenizer cache,
so every word of every document goes through the prefix/suffix/infix regexes again; it also runs the sentencizer when
only words are wanted, and C4 asks for the sentences of each kept line in a separate spaCy call.

`CachedSpacyTokenizer` is a datatrove `WordTokenizer` (the filters take one as `language`: datatrove's own extension
point) over the same `spacy.blank(lang)` + sentencizer pipeline that:
- tokenizes outside memory zones, so spaCy's own lexeme table and tokenizer cache work across documents; memory stays
  bounded because the pipeline is rebuilt (a fresh `spacy.blank`, 60 ms) once it has added `max_lexemes` lexemes;
- splits words with the tokenizer alone (the sentencizer never changes a token);
- answers "one sentence" for a stripped text with none of the sentencizer's punctuation characters (it cannot split there);
- finds the other texts' sentences from the tokenizer's token array (offset, text id, is_punct) with spaCy's
  `Sentencizer.predict` rule, written out here over integers (spaCy runs it over Python Token objects, one per token).
The golden test compares every decision and every edited text with datatrove's own tokenizer.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def _torch_hidden():
    """thinc (imported by spaCy) imports torch when it is installed: over half of a Python worker's start-up, for a
    blank tokenizer that never uses a neural backend. Hide torch while spaCy loads, unless something loaded it."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # `import torch` raises ImportError: thinc records that it has no torch
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


with _torch_hidden():
    from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer
    from spacy.attrs import IDX, IS_PUNCT, ORTH

DEFAULT_MAX_LEXEMES = 200_000


class CachedSpacyTokenizer(WordTokenizer):
    """The same words and sentence spans as datatrove's `SpaCyTokenizer(language)`, several times faster."""

    def __init__(self, language: str = "en", max_lexemes: int = DEFAULT_MAX_LEXEMES):
        super().__init__(language)
        self.max_lexemes = max_lexemes
        self._spacy = SpaCyTokenizer(language)
        self._base_lexemes = len(self._spacy.tokenizer.vocab)
        # datatrove's own tokenizer, used only as datatrove uses it, for the texts it treats specially.
        self._datatrove = SpaCyTokenizer(language)
        self._punct: frozenset[str] | None = None
        self._orth_facts: dict[int, tuple[bool, int]] = {}  # text id -> (in the sentencizer's punct_chars, length)
        self._last_words: tuple[str, list[str]] | None = None

    def _nlp(self, text: str):
        nlp = self._spacy.tokenizer
        if len(nlp.vocab) > self._base_lexemes + self.max_lexemes:
            # Rebuild rather than grow forever: tokens do not depend on what the cache holds.
            self._spacy = SpaCyTokenizer(self.language)
            nlp = self._spacy.tokenizer
            self._orth_facts = {}
        nlp.max_length = len(text) + 10
        return nlp

    def _special(self, text: str) -> bool:
        # The cases datatrove's tokenizer treats specially (chunked Japanese, a string that breaks spaCy): its own code.
        return self.language == "ja" or "IS_ALPHA" in text

    def word_tokenize(self, text: str) -> list[str]:
        # The Gopher filters and FineWeb's each split the same document into words: keep the last one's words.
        if self._last_words is not None and self._last_words[0] is text:
            return list(self._last_words[1])
        if self._special(text):
            words = self._datatrove.word_tokenize(text)
        else:
            nlp = self._nlp(text)
            texts = map(nlp.vocab.strings.__getitem__, nlp.tokenizer(text).to_array(ORTH).tolist())
            words = [w for w in map(str.strip, texts) if w]  # datatrove's strip_strings, in one pass
        self._last_words = (text, words)
        return list(words)

    def sent_tokenize(self, text: str) -> list[str]:
        return self._datatrove.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        if self._special(text):
            return self._datatrove.span_tokenize(text)
        nlp = self._nlp(text)
        if self._punct is None:
            self._punct = frozenset(nlp.get_pipe("sentencizer").punct_chars)
        if text and text == text.strip() and self._punct.isdisjoint(text):
            # The sentencizer starts a sentence only after one of its punctuation tokens: none here, so the stripped
            # text is one sentence from its first character to its last.
            return [(0, len(text))]
        rows = nlp.tokenizer(text).to_array([IDX, ORTH, IS_PUNCT]).tolist()
        if not rows:
            doc = nlp(text, disable=["parser", "tagger", "ner"])
            return [(s.start_char, s.end_char) for s in doc.sents]
        # spaCy's Sentencizer.predict: a sentence starts at the first token that is neither punctuation nor a
        # punct_chars token after a punct_chars token. A span ends where its last token's text ends.
        facts, strings, punct = self._orth_facts, nlp.vocab.strings, self._punct
        starts, seen = [0], False
        for i, (_, orth, is_punct) in enumerate(rows):
            fact = facts.get(orth)
            if fact is None:
                word = strings[orth]
                fact = facts[orth] = (word in punct, len(word))
            if seen and not is_punct and not fact[0]:
                starts.append(i)
                seen = False
            elif fact[0]:
                seen = True
        ends = starts[1:] + [len(rows)]
        return [(rows[a][0], rows[b - 1][0] + facts[rows[b - 1][1]][1]) for a, b in zip(starts, ends)]
