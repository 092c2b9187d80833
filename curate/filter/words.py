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
  here, and the chunks not seen yet go through spaCy together, once (a document of mostly unseen chunks: one whole
  pass, cached from). The one way a chunk's neighbours change its tokens is spaCy's special-case matcher working
  across the space between two chunks: where two adjacent chunks end and start with tokens (as the matcher saw them,
  before its own matches) that follow each other in some special case's pattern, that run of chunks goes through
  spaCy as text (`SpecialPairs`);
- creates lexemes with only the attribute the sentence split reads (is_punct): spaCy's tokenizer reads none, and the
  others (shape, norm, like_num...) are Python calls per new word.
The golden test compares every decision and every edited text with datatrove's own tokenizer.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from itertools import accumulate, chain, compress

import numpy as np


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
_NONSPACE = re.compile(r"\S+")  # \s of a str pattern is str.isspace(): the chunks of str.split() and of spaCy


class SpecialPairs:
    """What spaCy's special-case matcher can do across the space between two chunks. It sees each chunk's tokens
    before its own matches are applied (a match turns a run of pattern tokens into the rule's tokens), so a chunk's
    first token as the matcher saw it is its first token now, or the first pattern token of a rule whose first token
    that is; likewise its last. A match may cross from chunk a to chunk b only if such a last token of a and first
    token of b follow each other in a pattern. The patterns are what `Tokenizer.add_special_case` gives the matcher:
    each special case that affixes would split (all of them without `faster_heuristics`), tokenized by the affix
    rules alone."""

    def __init__(self, pairs: set[tuple[str, str]], firsts: dict[str, set[str]], lasts: dict[str, set[str]]):
        self._firsts = {k: frozenset(v) for k, v in firsts.items()}
        # Token -> every pattern token that may follow it across the space, through the tokens it may stand for:
        # one dict lookup per chunk boundary (this check runs on every chunk the cache learns).
        succ: dict[str, set[str]] = {}
        for a, b in pairs:
            succ.setdefault(a, set()).add(b)
        self._after = {k: frozenset(v) for k, v in succ.items()}
        for made, seen in lasts.items():
            after = set(succ.get(made, ())).union(*(succ.get(x, ()) for x in seen))
            if after:
                self._after[made] = frozenset(after)

    @classmethod
    def of(cls, tokenizer) -> SpecialPairs | None:
        """None when a pattern holds whitespace: a match could then reach over a whitespace token, and no chunk can
        be tokenized alone."""
        bare = Tokenizer(tokenizer.vocab, rules={}, prefix_search=tokenizer.prefix_search,
                         suffix_search=tokenizer.suffix_search, infix_finditer=tokenizer.infix_finditer,
                         token_match=tokenizer.token_match, url_match=tokenizer.url_match)
        pairs: set[tuple[str, str]] = set()
        firsts: dict[str, set[str]] = {}
        lasts: dict[str, set[str]] = {}
        for rule, substrings in sorted((tokenizer.rules or {}).items()):
            if tokenizer.faster_heuristics and not (tokenizer.find_prefix(rule) or tokenizer.find_infix(rule)
                                                    or tokenizer.find_suffix(rule) or " " in rule):
                continue
            pattern = [t.text for t in bare(rule)]
            if len(pattern) > 1 and any(c.isspace() for t in pattern for c in t):
                return None
            pairs.update(zip(pattern, pattern[1:]))
            made = [d[ORTH] if ORTH in d else d["ORTH"] for d in substrings]
            if pattern and made:
                firsts.setdefault(made[0], set()).add(pattern[0])
                lasts.setdefault(made[-1], set()).add(pattern[-1])
        return cls(pairs, firsts, lasts)

    def ends_left(self, tokens: tuple[str, ...]) -> bool:
        """Whether the chunk's last token, as the matcher may have seen it, starts a pattern pair."""
        return tokens[-1] in self._after

    def joinable(self, a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        """Whether a match may reach from chunk tokens `a` into the next chunk's `b`."""
        after = self._after.get(a[-1])
        if after is None:
            return False
        first = b[0]
        return first in after or not after.isdisjoint(self._firsts.get(first, ()))


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
        self._pairs = SpecialPairs.of(self._spacy.tokenizer.tokenizer)

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

    def _spans_tokens(self, text: str, starts: list[int], ends: list[int]) -> tuple[list[str], list[tuple[str, ...]]]:
        """spaCy's tokens of `text` (all of them), and those inside each span [starts[k], ends[k]) grouped by span."""
        nlp = self._nlp(text)
        rows = nlp.tokenizer(text).to_array([IDX, ORTH])
        texts = list(map(nlp.vocab.strings.__getitem__, rows[:, 1].tolist()))
        idx = rows[:, 0].astype(np.int64)
        owner = np.searchsorted(np.asarray(starts, np.int64), idx, side="right") - 1
        inside = np.flatnonzero((owner >= 0) & (idx < np.asarray(ends, np.int64)[np.maximum(owner, 0)]))
        bounds = np.searchsorted(owner[inside], np.arange(len(starts) + 1)).tolist()
        mine = [texts[i] for i in inside.tolist()]
        return texts, [tuple(mine[a:b]) for a, b in zip(bounds, bounds[1:])]

    def _keep(self, chunks: list[str], toks: list[tuple[str, ...]], learn: set[str] | None = None) -> list[int]:
        """Cache the chunks' tokens where they are the chunk's own (those of `learn` only, if given); return the
        positions whose tokens are not: a chunk's own tokens spell it exactly (spaCy checks that of every special
        case), and a chunk next to one a match may join may have been changed by the matcher across the space."""
        sp = self._pairs
        # A match that made one token across the space spoils both chunks' spelling; one that only kept two chunks'
        # tokens apart leaves a joinable pair at their boundary.
        suspect = {i for i, (c, t) in enumerate(zip(chunks, toks)) if not t or "".join(t) != c}
        for i in range(len(chunks) - 1):
            if toks[i] and toks[i + 1] and sp.joinable(toks[i], toks[i + 1]):
                suspect.update((i, i + 1))
        for i, (chunk, t) in enumerate(zip(chunks, toks)):
            if i in suspect or (learn is not None and chunk not in learn):
                continue
            self._chunks[chunk] = t
            if "" in t:
                self._odd.add(chunk)
            elif sp.ends_left(t):
                self._ends_pair.add(chunk)
        return sorted(suspect)

    def _learn(self, new: list[str]) -> None:
        """Tokenize chunks not seen yet, joined by single spaces into one text (spaCy splits it back into the same
        chunks); chunks whose tokens the matcher may have changed across the joins are redone one at a time."""
        starts = [0, *accumulate(len(c) + 1 for c in new)][:-1]
        _, toks = self._spans_tokens(" ".join(new), starts, [a + len(c) for a, c in zip(starts, new)])
        for i in self._keep(new, toks):
            t = self._tokenize_alone(new[i])
            self._chunks[new[i]] = t
            if not t or "" in t:
                self._odd.add(new[i])
            elif self._pairs.ends_left(t):
                self._ends_pair.add(new[i])

    def _whole_and_learn(self, text: str, new: set[str]) -> list[str]:
        """The words of spaCy's whole-document pass; its tokens of the new chunks are cached where they are the
        chunk's own (a document of mostly unseen chunks, like random characters, costs one spaCy pass, not two)."""
        found = [(m.start(), m.end()) for m in _NONSPACE.finditer(text)]
        starts, ends = [a for a, _ in found], [b for _, b in found]
        texts, toks = self._spans_tokens(text, starts, ends)
        self._keep([text[a:b] for a, b in found], toks, learn=new)
        return [w for w in map(str.strip, texts) if w]  # datatrove's strip_strings, in one pass

    def _chunk_words(self, text: str) -> list[str] | None:
        """The words from the chunk cache (None: spaCy tokenizes the document whole)."""
        if self._pairs is None:
            return None
        chunks = text.split()  # spaCy's chunks: str.split() and spaCy both split at str.isspace() characters
        distinct = set(chunks)
        new = distinct.difference(self._chunks)
        if 2 * len(new) > len(distinct):
            return self._whole_and_learn(text, new)
        if new:
            self._learn(sorted(new))
        if not self._odd.isdisjoint(chunks):
            return None
        cache = self._chunks
        if self._ends_pair.isdisjoint(chunks):
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        sp, ends = self._pairs, self._ends_pair
        joined = [i for i in compress(range(len(chunks) - 1), map(ends.__contains__, chunks))
                  if sp.joinable(cache[chunks[i]], cache[chunks[i + 1]])]
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
