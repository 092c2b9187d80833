"""Filter stage configuration: datatrove's thresholds (their defaults), presets, and per-domain keep rules.

TOML shape (every key optional):

    [filter]
    preset = "fineweb"              # the default rules, for every domain without its own table
    languages = ["en"]              # [] = no language rule
    lang_threshold = 0.65
    quality_keep_top = 0.9          # or quality_threshold = 0.5; neither = no quality rule

    [filter.domains.code]           # per-domain: any of the keys above; unset keys come from the default
    preset = "none"
    languages = []

    [filter.gopher_quality]         # datatrove thresholds, for every domain whose preset runs that filter
    min_doc_words = 50

    [filter.quality]                # the fastText quality classifier
    model = "path/model.bin"        # or train one in the stage from the input's own domains:
    train_from = { positive = ["docs"], negative = ["web"] }
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from curate.config_model import StrictModel

Preset = Literal["fineweb", "gopher", "c4", "none"]

# The filters each preset runs, in order (FineWeb's order: Gopher repetition -> Gopher quality -> C4 -> FineWeb).
PRESETS: dict[str, tuple[str, ...]] = {
    "fineweb": ("gopher_repetition", "gopher_quality", "c4", "fineweb_quality"),
    "gopher": ("gopher_repetition", "gopher_quality"),
    "c4": ("c4",),
    "none": (),
}
# C4's terminal-punctuation line rule per preset: the C4 paper keeps it, FineWeb switched it off.
C4_TERMINAL_PUNCT = {"c4": True, "fineweb": False}


class GopherRepetitionConfig(StrictModel):
    """datatrove `GopherRepetitionFilter` arguments (Gopher paper, table A1)."""

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] = Field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[int, float]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )


class GopherQualityConfig(StrictModel):
    """datatrove `GopherQualityFilter` arguments."""

    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: int | None = 3
    max_avg_word_length: int | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: list[str] | None = None


class C4Config(StrictModel):
    """datatrove `C4QualityFilter` arguments; `filter_no_terminal_punct = None` means the preset's choice."""

    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool | None = None
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebQualityConfig(StrictModel):
    """datatrove `FineWebQualityFilter` arguments."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


def check_languages(codes: list[str]) -> list[str]:
    """`codes` when the language-ID model can return each of them; a code it cannot (`EN`, `eng`, a typo) would
    remove every document as wrong_language, so it is an error naming the code."""
    from curate.filter.langid import known_languages

    known = known_languages()
    unknown = [c for c in codes if c not in known]
    if unknown:
        hints = {c: c.lower()[:2] for c in unknown if c.lower()[:2] in known}
        raise ValueError("language code(s) the language-ID model (lid.176) does not know: "
                         + ", ".join(f"{c!r}" + (f" (did you mean {hints[c]!r}?)" if c in hints else "")
                                     for c in unknown)
                         + "; it returns ISO 639 codes such as en, de, fr, zh")
    return codes


class DomainRules(StrictModel):
    """The keep rules of one domain; a `[filter.domains.X]` table sets only what differs from the default."""

    preset: Preset | None = None
    languages: list[str] | None = None
    lang_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    quality_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    quality_keep_top: float | None = Field(default=None, gt=0.0, le=1.0)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str] | None) -> list[str] | None:
        return value if value is None else check_languages(value)

    @model_validator(mode="after")
    def _one_quality_rule(self) -> DomainRules:
        if self.quality_threshold is not None and self.quality_keep_top is not None:
            raise ValueError("set quality_threshold or quality_keep_top, not both")
        return self


class QualityTrainFrom(StrictModel):
    """Train the quality classifier in the stage: these domains of the input are the positives and negatives."""

    positive: list[str]
    negative: list[str]


class QualityConfig(StrictModel):
    """The fastText quality classifier (DCLM's recipe: supervised, word bigrams) and how it is trained."""

    model: str | None = Field(default=None, description="fastText quality model from `curate quality-train`")
    train_from: QualityTrainFrom | None = None
    word_ngrams: int = 2
    # Small and quick: enough to tell reference docs from web pages.
    dim: int = Field(default=16, description="word vector size")
    epoch: int = Field(default=25, description="training epochs")
    lr: float = Field(default=0.5, description="learning rate")
    min_count: int = 1
    # Hash buckets for word n-grams; fastText's 2M makes a 500 MB model, which a small classifier does not need.
    bucket: int = 200_000
    valid_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, description="held-out share of documents")
    # The smallest hashes of id: deterministic, and bounded on the driver.
    max_docs_per_class: int = Field(default=200_000, gt=0, description="documents per class at most")
    seed: int = Field(default=0, description="fastText's seed")

    @model_validator(mode="after")
    def _one_source(self) -> QualityConfig:
        if self.model and self.train_from:
            raise ValueError("set quality.model or quality.train_from, not both")
        return self


class FilterConfig(StrictModel):
    """The filter stage: default rules, per-domain rules, datatrove thresholds, the quality model."""

    preset: Preset = Field(default="fineweb", description="heuristic rules (fineweb = Gopher repetition, Gopher "
                                                          "quality, C4, FineWeb)")
    languages: list[str] = Field(default_factory=lambda: ["en"], description="languages to keep ([] = no language "
                                                                              "rule)")
    lang_threshold: float = Field(default=0.65, ge=0.0, le=1.0, description="minimum language score")
    quality_threshold: float | None = Field(default=None, ge=0.0, le=1.0,
                                            description="keep documents scoring at least this")
    quality_keep_top: float | None = Field(default=None, gt=0.0, le=1.0,
                                           description="keep the top fraction of each domain by quality score")
    domains: dict[str, DomainRules] = Field(default_factory=dict)
    # Language of datatrove's word tokenizer (spaCy blank model).
    word_language: str = "en"
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    # Removed documents shown per reason in stats.json (the smallest hashes of id).
    samples_per_reason: int = Field(default=3, ge=0)
    sample_chars: int = Field(default=400, gt=0)
    output_partitions: int = Field(default=0, ge=0, description="output files per domain directory; 0 = one per "
                                                                 "128 MiB of input")

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        return check_languages(value)

    @model_validator(mode="after")
    def _one_quality_rule(self) -> FilterConfig:
        if self.quality_threshold is not None and self.quality_keep_top is not None:
            raise ValueError("set quality_threshold or quality_keep_top, not both")
        return self

    def rules_for(self, domain: str) -> ResolvedRules:
        """The default rules with the domain's own table laid over them."""
        own = self.domains.get(domain, DomainRules())
        threshold, top = self.quality_threshold, self.quality_keep_top
        if own.quality_threshold is not None or own.quality_keep_top is not None:
            threshold, top = own.quality_threshold, own.quality_keep_top
        return ResolvedRules(
            preset=own.preset or self.preset,
            languages=tuple(self.languages if own.languages is None else own.languages),
            lang_threshold=self.lang_threshold if own.lang_threshold is None else own.lang_threshold,
            quality_threshold=threshold,
            quality_keep_top=top,
        )

    def uses_quality(self) -> bool:
        rules = [self.rules_for(d) for d in self.domains] + [self.rules_for("\0default")]
        return any(r.quality_threshold is not None or r.quality_keep_top is not None for r in rules)

    def filter_kwargs(self, name: str, preset: str) -> dict[str, Any]:
        """Keyword arguments of datatrove's filter `name` as the given preset runs it."""
        if name == "gopher_repetition":
            kw = self.gopher_repetition.model_dump()
            return {**kw, "top_n_grams": tuple(map(tuple, kw["top_n_grams"])),
                    "dup_n_grams": tuple(map(tuple, kw["dup_n_grams"]))}
        if name == "gopher_quality":
            return self.gopher_quality.model_dump()
        if name == "c4":
            kw = self.c4.model_dump()
            if kw["filter_no_terminal_punct"] is None:
                kw["filter_no_terminal_punct"] = C4_TERMINAL_PUNCT.get(preset, True)
            return kw
        if name == "fineweb_quality":
            return self.fineweb_quality.model_dump()
        raise KeyError(name)


class ResolvedRules(StrictModel):
    """One domain's effective rules."""

    preset: Preset
    languages: tuple[str, ...]
    lang_threshold: float
    quality_threshold: float | None
    quality_keep_top: float | None

    @property
    def quality_rule(self) -> bool:
        return self.quality_threshold is not None or self.quality_keep_top is not None
