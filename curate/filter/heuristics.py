"""The heuristic presets: datatrove's own filter classes, chained in FineWeb's order, run on one document at a time.

Decisions are datatrove's: its `filter()` code runs unchanged, except that the word tokenizer object the filters
receive as `language` is `CachedSpacyTokenizer`, which returns the same words and sentences faster (see `words.py`),
and the Gopher filters' per-word and per-n-gram loops run in C loops (`fast_filters.py`: datatrove's checks in
datatrove's order). The golden test holds the chain to datatrove's own decisions and edited texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.utils.word_tokenizers import WordTokenizer

from curate.filter.config import PRESETS, FilterConfig
from curate.filter.fast_filters import FastGopherQualityFilter, FastGopherRepetitionFilter

FILTER_CLASSES: dict[str, type[BaseFilter]] = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}


# Same decisions, less time (the golden test compares them with FILTER_CLASSES).
FAST_CLASSES: dict[str, type[BaseFilter]] = {"gopher_repetition": FastGopherRepetitionFilter,
                                             "gopher_quality": FastGopherQualityFilter}


def build_filters(cfg: FilterConfig, preset: str, language: str | WordTokenizer, fast: bool = True) -> list[BaseFilter]:
    """datatrove's filters for `preset`, in order, with the configured thresholds; `language` is a language code
    (datatrove's own spaCy tokenizer) or a `WordTokenizer` object. `fast=False`: datatrove's classes only."""
    classes = {**FILTER_CLASSES, **FAST_CLASSES} if fast else FILTER_CLASSES
    return [classes[name](**cfg.filter_kwargs(name, preset), language=language) for name in PRESETS[preset]]


@dataclass
class Verdict:
    """What the chain said about one document: the first failing rule (None = passed) and its text afterwards."""

    reason: str | None
    text: str


def run_chain(filters: list[BaseFilter], text: str, doc_id: str = "") -> Verdict:
    """Run the filters in order on one document, as a datatrove pipeline does: the first failure stops it; C4's
    line edits change the text the later filters see, and the verdict's text is the document as the chain left it
    (what datatrove's exclusion writer would save)."""
    doc = Document(text=text, id=doc_id)
    for f in filters:
        keep, reason = get_filter_result(f.filter(doc))
        if not keep:
            return Verdict(reason or f"{type(f).__name__}", doc.text)
    return Verdict(None, doc.text)


class ChainCache:
    """Filters built once per Python worker and reused by every batch it runs (keyed by config and preset)."""

    _chains: dict[tuple[str, str], list[BaseFilter]] = {}
    _tokenizers: dict[str, Any] = {}

    @classmethod
    def get(cls, cfg: FilterConfig, preset: str) -> list[BaseFilter]:
        key = (cfg.model_dump_json(), preset)
        chain = cls._chains.get(key)
        if chain is None:
            chain = cls._chains[key] = build_filters(cfg, preset, cls.tokenizer(cfg.word_language))
        return chain

    @classmethod
    def tokenizer(cls, language: str):
        from curate.filter.words import CachedSpacyTokenizer

        tok = cls._tokenizers.get(language)
        if tok is None:
            tok = cls._tokenizers[language] = CachedSpacyTokenizer(language)
        return tok
