"""datatrove's Gopher filters with their per-word and per-n-gram loops rewritten to run in C loops; same numbers,
same decisions.

Repetition. The filter is the slowest rule of the FineWeb chain after spaCy (profiled: `find_all_duplicate` ~19% of
the filter stage, `get_n_grams` + `find_top_duplicate` ~13%): for each n it builds every n-gram with a Python-level
`"".join(words[i:i + n])`. Here the n-grams are slices of one joined string, cut by `map(slice, starts, ends)` (no
Python bytecode per n-gram), counted by `Counter(iterable)`'s C helper, and the sequential duplicate scan runs only
when some n-gram repeats at all (most documents have none for n >= 5). Documents of KERNEL_MIN_WORDS words or more
go to compiled loops over one hash of the joined text instead (ngram_kernels.py). Written by hand because datatrove has no
faster variant; `filter()` below is datatrove 0.10.1's, check for check (pinned in pyproject.toml), and the tests
compare every helper and every decision with datatrove's own on random and adversarial inputs (ties, n-grams that
only collide once the words are joined without a separator).

Quality. Two generator expressions per word (`any(ch not in PUNCTUATION_SET ...)`, `any(c.isalpha() ...)`) become
per-distinct-word facts kept in a bounded dict (words repeat: Zipf) and read with `map`; the checks are datatrove
0.10.1's, in its order.
"""

from __future__ import annotations

from collections import Counter
from itertools import accumulate, compress

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import PUNCTUATION_SET, split_into_words

MAX_CACHED_WORDS = 500_000


def _ngrams(joined: str, offsets: list[int], n: int, sep: int) -> list[str]:
    """The n-gram strings at every word position: joined[offsets[i] : offsets[i + n] - sep]."""
    m = len(offsets) - n  # = words - n + 1 positions
    if m <= 0:
        return []
    ends = offsets[n:] if not sep else [o - sep for o in offsets[n:]]
    return list(map(joined.__getitem__, map(slice, offsets[:m], ends)))


KERNEL_MIN_WORDS = 100  # from here on the compiled kernels (ngram_kernels.py) repay their per-call cost


class WordNgrams:
    """One document's words, joined once with and once without a separator, for every n."""

    def __init__(self, words: list[str]):
        lengths = list(map(len, words))
        self.plain = "".join(words)
        self.plain_offsets = [0, *accumulate(lengths)]
        self.spaced = " ".join(words)
        self.spaced_offsets = [0, *accumulate(x + 1 for x in lengths)]
        self._kernels = None
        if len(words) >= KERNEL_MIN_WORDS:
            from curate.filter.ngram_kernels import JoinedWords

            self._kernels = JoinedWords(self.plain, self.plain_offsets, self.spaced, self.spaced_offsets)

    def top_duplicate_chars(self, n: int) -> int | None:
        """datatrove's `find_top_duplicate(get_n_grams(words, n))`; None when there is no n-gram."""
        if self._kernels is not None:
            got = self._kernels.top_duplicate(n)
            if got != -1:
                return None if got == -2 else got
        grams = self.spaced_ngrams(n)
        return top_duplicate_chars(grams) if grams else None

    def spaced_ngrams(self, n: int) -> list[str]:
        """datatrove's `get_n_grams(words, n)`: `" ".join(words[i : i + n])` for every i."""
        return _ngrams(self.spaced, self.spaced_offsets, n, 1)

    def all_duplicate_chars(self, n: int) -> int:
        """datatrove's `find_all_duplicate(words, n)`: scan left to right; an n-gram (joined without a separator)
        seen before adds its length and jumps n words, a new one is remembered and the scan moves one word."""
        if self._kernels is not None:
            got = self._kernels.all_duplicate(n)
            if got != -1:
                return got
        grams = _ngrams(self.plain, self.plain_offsets, n, 0)
        if len(set(grams)) == len(grams):
            return 0  # nothing repeats: the scan below would never find a duplicate
        unique: set[str] = set()
        repeated, idx, m = 0, 0, len(grams)
        while idx < m:
            gram = grams[idx]
            if gram in unique:
                repeated += len(gram)
                idx += n
            else:
                unique.add(gram)
                idx += 1
        return repeated


def top_duplicate_chars(ngrams: list[str]) -> int:
    """datatrove's `find_top_duplicate`: length x count of the most common n-gram (the first seen among ties)."""
    gram, count = Counter(ngrams).most_common(1)[0]
    return len(gram) * count


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """`GopherRepetitionFilter` with the same checks in the same order, its n-gram helpers replaced."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"

        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"

        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        grams = WordNgrams(split_into_words(text, self.language))

        for n, n_frac in self.top_n_grams:
            top = grams.top_duplicate_chars(n)
            if top is None:
                continue
            if top / len(text) > n_frac:
                return False, f"top_{n}_gram"

        for n, n_frac in self.dup_n_grams:
            if grams.all_duplicate_chars(n) / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"

        return True


class FastGopherQualityFilter(GopherQualityFilter):
    """`GopherQualityFilter` with the same checks in the same order, its per-word predicates cached per word."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._has_non_symbol: dict[str, bool] = {}  # any(ch not in PUNCTUATION_SET for ch in w)
        self._has_alpha: dict[str, bool] = {}  # any(c.isalpha() for c in w)

    def _learn(self, words: list[str]) -> None:
        if len(self._has_alpha) > MAX_CACHED_WORDS:
            self._has_non_symbol.clear()
            self._has_alpha.clear()
        for w in set(words).difference(self._has_alpha):
            self._has_non_symbol[w] = not PUNCTUATION_SET.issuperset(w)
            self._has_alpha[w] = any(c.isalpha() for c in w)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        self._learn(words)

        non_symbol_words = list(compress(words, map(self._has_non_symbol.__getitem__, words)))
        n_non_symbol_words_words = len(non_symbol_words)

        if self.min_doc_words and n_non_symbol_words_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol_words_words > self.max_doc_words:
            return False, "gopher_long_doc"

        avg_n_words = np.mean(list(map(len, non_symbol_words)))
        if self.min_avg_word_length and avg_n_words < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_n_words > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"

        lines = text.splitlines()
        if (
            self.max_bullet_lines_ratio
            and sum(s.lstrip().startswith("•") or s.lstrip().startswith("-") for s in lines) / len(lines)
            > self.max_bullet_lines_ratio
        ):
            return False, "gopher_too_many_bullets"
        if (
            self.max_ellipsis_lines_ratio
            and sum(s.rstrip().endswith("...") or s.rstrip().endswith("…") for s in lines) / len(lines)
            > self.max_ellipsis_lines_ratio
        ):
            return False, "gopher_too_many_end_ellipsis"

        if (
            self.max_non_alpha_words_ratio
            and sum(map(self._has_alpha.__getitem__, words)) / n_words < self.max_non_alpha_words_ratio
        ):
            return False, "gopher_below_alpha_threshold"

        if self.min_stop_words and len(self.stop_words.intersection(set(words))) < self.min_stop_words:
            return False, "gopher_enough_stop_words"

        return True
