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
- splits words chunk by chunk: spaCy tokenizes each whitespace-free chunk on its own (its loop walks the text one
  character at a time, then looks each chunk up in its cache), so the words of a chunk seen before come from a dict
  here, and the chunks not seen yet go through spaCy together, once. The one way a chunk's neighbours change its
  tokens is a special case that spaCy's matcher finds across the space between two chunks: a document where two
  adjacent chunks end and start with a pair of tokens that follow each other in some special case goes through
  spaCy whole, as before;
- creates lexemes with only the attribute the sentence split reads (is_punct): spaCy's tokenizer reads none, and the
  others (shape, norm, like_num...) are Python calls per new word.
The golden test compares every decision and every edited text with datatrove's own tokenizer.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from itertools import accumulate, chain, compress


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
    from spacy.attrs import IDX, IS_PUNCT, LANG, ORTH
    from spacy.tokenizer import Tokenizer

DEFAULT_MAX_LEXEMES = 200_000
DEFAULT_MAX_CHUNKS = 500_000


def _special_pairs(tokenizer) -> tuple[frozenset[tuple[str, str]], frozenset[str]] | None:
    """The pairs of tokens that follow each other in a pattern of spaCy's special-case matcher, and the tokens that
    start such a pair; None when a pattern holds whitespace (a match could then reach over a whitespace token, and
    no chunk can be tokenized alone). The patterns are what `Tokenizer.add_special_case` gives the matcher: each
    special case that affixes would split (all of them without `faster_heuristics`), tokenized by the affix rules
    alone."""
    bare = Tokenizer(tokenizer.vocab, rules={}, prefix_search=tokenizer.prefix_search,
                     suffix_search=tokenizer.suffix_search, infix_finditer=tokenizer.infix_finditer,
                     token_match=tokenizer.token_match, url_match=tokenizer.url_match)
    pairs: set[tuple[str, str]] = set()
    for rule in sorted(tokenizer.rules or {}):
        if tokenizer.faster_heuristics and not (tokenizer.find_prefix(rule) or tokenizer.find_infix(rule)
                                                or tokenizer.find_suffix(rule) or " " in rule):
            continue
        tokens = [t.text for t in bare(rule)]
        if len(tokens) > 1 and any(c.isspace() for t in tokens for c in t):
            return None
        pairs.update(zip(tokens, tokens[1:]))
    return frozenset(pairs), frozenset(a for a, _ in pairs)


def _lean(vocab) -> None:
    """Keep the lexeme attribute getters this module reads (is_punct, and the language), drop the others."""
    vocab.lex_attr_getters = {k: f for k, f in vocab.lex_attr_getters.items() if k in (IS_PUNCT, LANG)}


class CachedSpacyTokenizer(WordTokenizer):
    """The same words and sentence spans as datatrove's `SpaCyTokenizer(language)`, several times faster."""

    def __init__(self, language: str = "en", max_lexemes: int = DEFAULT_MAX_LEXEMES,
                 max_chunks: int = DEFAULT_MAX_CHUNKS):
        super().__init__(language)
        self.max_lexemes = max_lexemes
        self.max_chunks = max_chunks
        # datatrove's own tokenizer, used only as datatrove uses it, for the texts it treats specially.
        self._datatrove = SpaCyTokenizer(language)
        self._punct: frozenset[str] | None = None
        self._last_words: tuple[str, list[str]] | None = None
        self._fresh()
        self._pairs = _special_pairs(self._spacy.tokenizer.tokenizer)

    def _make_spacy(self) -> SpaCyTokenizer:
        return SpaCyTokenizer(self.language)

    def _fresh(self) -> None:
        self._spacy = self._make_spacy()
        _lean(self._spacy.tokenizer.vocab)
        # spaCy stops caching chunks after 10,000: the sentence split of kept lines tokenizes text seen before.
        self._spacy.tokenizer.tokenizer.max_cache_size = self.max_chunks
        self._base_lexemes = len(self._spacy.tokenizer.vocab)
        self._orth_facts: dict[int, tuple[bool, int]] = {}  # text id -> (in the sentencizer's punct_chars, length)
        self._forget_chunks()

    def _forget_chunks(self) -> None:
        self._chunks: dict[str, tuple[str, ...]] = {}  # chunk -> its tokens
        self._ends_pair: set[str] = set()  # chunks whose last token starts a special-case pair
        self._odd: set[str] = set()  # chunks with an empty token (a custom special case): their documents go whole

    def _bound(self) -> None:
        """At a document's start: rebuild rather than grow forever (tokens do not depend on what a cache holds)."""
        if len(self._spacy.tokenizer.vocab) > self._base_lexemes + self.max_lexemes:
            self._fresh()
        elif len(self._chunks) > self.max_chunks:
            self._forget_chunks()

    def _nlp(self, text: str):
        nlp = self._spacy.tokenizer
        nlp.max_length = len(text) + 10
        return nlp

    def _whole_words(self, text: str) -> list[str]:
        nlp = self._nlp(text)
        texts = map(nlp.vocab.strings.__getitem__, nlp.tokenizer(text).to_array(ORTH).tolist())
        return [w for w in map(str.strip, texts) if w]  # datatrove's strip_strings, in one pass

    def _tokenize_alone(self, chunk: str) -> tuple[str, ...]:
        nlp = self._nlp(chunk)
        return tuple(map(nlp.vocab.strings.__getitem__, nlp.tokenizer(chunk).to_array(ORTH).tolist()))

    def _learn(self, new: list[str]) -> None:
        """Tokenize chunks not seen yet, joined by single spaces into one text (spaCy splits it back into the same
        chunks); a pair of neighbours there that a special case could join is redone one chunk at a time."""
        joined = " ".join(new)
        nlp = self._nlp(joined)
        rows = nlp.tokenizer(joined).to_array([IDX, ORTH]).tolist()
        starts = [0, *accumulate(len(c) + 1 for c in new)]
        strings = nlp.vocab.strings
        got: list[list[str]] = [[] for _ in new]
        j = 0
        for idx, orth in rows:
            while idx >= starts[j + 1]:
                j += 1
            got[j].append(strings[orth])
        toks = [tuple(g) for g in got]
        pairs = self._pairs[0] if self._pairs else frozenset()
        # A chunk's own tokens spell it exactly (spaCy checks that of every special case). Not so, or two neighbours
        # ending and starting with a special case's pair: the matcher may have worked across them.
        redo = {i for i, (c, t) in enumerate(zip(new, toks)) if "".join(t) != c}
        for i in range(len(new) - 1):
            if toks[i] and toks[i + 1] and (toks[i][-1], toks[i + 1][0]) in pairs:
                redo.update((i, i + 1))
        for i in redo:
            toks[i] = self._tokenize_alone(new[i])
        left = self._pairs[1] if self._pairs else frozenset()
        for chunk, t in zip(new, toks):
            self._chunks[chunk] = t
            if not t or "" in t:
                self._odd.add(chunk)
            elif t[-1] in left:
                self._ends_pair.add(chunk)

    def _chunk_words(self, text: str) -> list[str] | None:
        """The words from the chunk cache (None: spaCy tokenizes the document whole)."""
        if self._pairs is None:
            return None
        chunks = text.split()  # spaCy's chunks: str.split() and spaCy both split at str.isspace() characters
        new = set(chunks).difference(self._chunks)
        if new:
            self._learn(sorted(new))
        if not self._odd.isdisjoint(chunks):
            return None
        cache = self._chunks
        if self._ends_pair.isdisjoint(chunks):
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        pairs, ends = self._pairs[0], self._ends_pair
        joined = [i for i in compress(range(len(chunks) - 1), map(ends.__contains__, chunks))
                  if (cache[chunks[i]][-1], cache[chunks[i + 1]][0]) in pairs]
        if not joined:
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        # A special case may match across these chunks: each run of chunks linked that way is tokenized as the text
        # it spans (spaces included), the other chunks alone. A match cannot reach past a chunk pair no special
        # case holds, so the runs are independent of the rest.
        starts, pos = [], 0
        for c in chunks:
            pos = text.find(c, pos)
            starts.append(pos)
            pos += len(c)
        words: list[str] = []
        i, links = 0, set(joined)
        while i < len(chunks):
            if i not in links:
                words.extend(cache[chunks[i]])
                i += 1
                continue
            j = i
            while j in links:
                j += 1
            words.extend(self._whole_words(text[starts[i]:starts[j] + len(chunks[j])]))
            i = j + 1
        return words

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
            self._bound()
            chunked = self._chunk_words(text)
            words = self._whole_words(text) if chunked is None else chunked
        self._last_words = (text, words)
        return list(words)

    def sent_tokenize(self, text: str) -> list[str]:
        return self._datatrove.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        if self._special(text):
            return self._datatrove.span_tokenize(text)
        self._bound()
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
