"""The quality classifier, DCLM's recipe: a fastText supervised model with word bigrams, trained on two document
sets (positives: text like what we want; negatives: ordinary web text), scoring every document with P(positive).

Training reads a bounded, deterministic sample of each set (the smallest hashes of id) out of Spark into one local
training file (fastText trains from a file, single-threaded in a child process so the model is reproducible: see
`fasttext_train`), holds out a split by hash of id, and reports precision, recall and ROC AUC on it with scikit-learn.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from curate.console import console
from curate.errors import CurateError
from curate.filter.config import QualityConfig
from curate.filter.fasttext_train import Diverged, train_supervised

POSITIVE = "__label__hq"
NEGATIVE = "__label__lq"


def model_text(text: str) -> str:
    """What the model reads: the document on one line, lowercased (fastText splits on whitespace)."""
    return " ".join(text.lower().split())


def _sample(df: DataFrame, n: int, label: str) -> DataFrame:
    return (
        df.select("id", "text")
        .withColumn("_h", F.xxhash64("id"))
        .orderBy("_h", "id")
        .limit(n)
        .withColumn("label", F.lit(label))
    )


def train_quality(
    positive: DataFrame, negative: DataFrame, out_model: str, cfg: QualityConfig
) -> dict[str, Any]:
    """Train the classifier on two document DataFrames (id, text), write it to `out_model` and its metrics beside it
    (`<model>.json`); return the metrics."""
    import fasttext
    import numpy as np
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    rows = _sample(positive, cfg.max_docs_per_class, POSITIVE).unionByName(
        _sample(negative, cfg.max_docs_per_class, NEGATIVE)
    )
    # The held-out split is a fixed function of the id: the same documents whatever the partitioning.
    rows = rows.withColumn("_valid", (F.abs(F.xxhash64(F.concat(F.lit("valid:"), "id"))) % 10_000)
                           < int(cfg.valid_fraction * 10_000))
    counts = {(r["label"], r["_valid"]): r["count"] for r in rows.groupBy("label", "_valid").count().collect()}
    n_pos = counts.get((POSITIVE, False), 0) + counts.get((POSITIVE, True), 0)
    n_neg = counts.get((NEGATIVE, False), 0) + counts.get((NEGATIVE, True), 0)
    if n_pos == 0 or n_neg == 0:
        raise CurateError(f"quality-train: need documents in both sets (positive {n_pos}, negative {n_neg})")

    os.makedirs(os.path.dirname(os.path.abspath(out_model)) or ".", exist_ok=True)
    valid: list[tuple[int, str]] = []
    with tempfile.TemporaryDirectory(prefix="curate-quality-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            # Sorted so the training file (and so the model) does not depend on partitioning.
            for r in rows.orderBy("_h", "id").toLocalIterator():
                line = model_text(r["text"])
                if r["_valid"]:
                    valid.append((1 if r["label"] == POSITIVE else 0, line))
                else:
                    f.write(f"{r['label']} {line}\n")
        if os.path.getsize(train_file) == 0:
            raise CurateError("quality-train: the held-out split took every document; lower valid_fraction")
        # A loss that goes to NaN is a learning rate too high for this data: retry at half of it, and record the
        # rate the model was trained at. (The spurious NaNs of the fastText build were uninitialized memory, which
        # the child process in fasttext_train removes.)
        lr_used = None
        for lr in (cfg.lr, cfg.lr / 2, cfg.lr / 4, cfg.lr / 8):
            try:
                train_supervised(
                    train_file, out_model, wordNgrams=cfg.word_ngrams, dim=cfg.dim, epoch=cfg.epoch, lr=lr,
                    minCount=cfg.min_count, bucket=cfg.bucket, thread=1, seed=cfg.seed, verbose=0,
                )
                lr_used = lr
                break
            except Diverged:
                console.print(f"[yellow]quality-train: fastText diverged (NaN) at lr {lr:g}; retrying at {lr / 2:g}[/]")
            except RuntimeError as exc:
                raise CurateError(f"quality-train: fastText training failed: {exc}") from None
        if lr_used is None:
            raise CurateError(f"quality-train: fastText training diverged (NaN) even at lr {cfg.lr / 8:g}; "
                              "lower quality.lr")
    model = fasttext.load_model(out_model)
    metrics: dict[str, Any] = {
        "model": os.path.basename(out_model), "lr": lr_used, "positive_docs": n_pos, "negative_docs": n_neg,
        "train_docs": n_pos + n_neg - len(valid), "valid_docs": len(valid), "config": cfg.model_dump(),
    }
    if valid and len({y for y, _ in valid}) == 2:
        y = np.array([y for y, _ in valid])
        s = np.array(score_texts_with(model, [t for _, t in valid]))
        pred = (s >= 0.5).astype(int)
        metrics.update(
            precision=round(float(precision_score(y, pred, zero_division=0)), 4),
            recall=round(float(recall_score(y, pred, zero_division=0)), 4),
            roc_auc=round(float(roc_auc_score(y, s)), 4),
        )
    else:
        console.print("[yellow]quality-train: the held-out split lacks one class; no precision/recall/AUC[/]")
    with open(out_model + ".json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    return metrics


def score_texts_with(model, lines: list[str]) -> list[float]:
    """P(positive) for texts already passed through `model_text`."""
    labels, probs = model.predict(lines, k=2)
    out = []
    for labs, ps in zip(labels, probs):
        p = dict(zip(labs, (float(x) for x in ps)))
        out.append(min(1.0, max(0.0, p.get(POSITIVE, 1.0 - p.get(NEGATIVE, 1.0)))))
    return out


@lru_cache(maxsize=4)
def _load(path: str, size: int, mtime_ns: int):
    import fasttext

    return fasttext.load_model(path)


def load_quality_model(path: str):
    """A quality model, loaded once per Python process and file version: a stage rerun that retrains the model at
    the same path must not score with the previous run's model cached in a reused Python worker."""
    st = os.stat(path)
    return _load(path, st.st_size, st.st_mtime_ns)


def score_texts(path: str, texts: list[str]) -> list[float]:
    """P(positive) of each document under the model at `path`."""
    return score_texts_with(load_quality_model(path), [model_text(t) for t in texts])
