"""The demo pipeline's filter outcomes against the corpus's ground truth."""

from __future__ import annotations

import pyarrow.parquet as pq

from curate.config import load_pipeline
from curate.demo import build_demo_corpus
from curate.pipeline import PIPELINES_DIR, run_pipeline


def test_demo_filter_removes_spam_and_foreign_pages_and_keeps_code_and_legal(spark, tmp_path):
    truth = build_demo_corpus(tmp_path / "corpus")
    cfg = load_pipeline(PIPELINES_DIR / "demo.toml",
                        [f'ingest.inputs=["{tmp_path / "corpus" / "raw"}"]', f'run.out="{tmp_path / "run"}"',
                         'stages=["ingest", "filter"]'])
    results = run_pipeline(spark, cfg)
    stats = results["filter"]
    removed = pq.ParquetDataset(tmp_path / "run" / "filter" / "removed").read().to_pandas()
    gone = set(removed["id"])
    assert set(truth["spam"]) <= gone
    assert {f["id"] for f in truth["foreign"]} <= gone
    assert set(removed[removed["id"].isin({f["id"] for f in truth["foreign"]})]["reason"]) == {"wrong_language"}
    for domain in ("code", "legal"):
        assert stats["by_domain"][domain]["removed_docs"] == 0
        assert stats["by_domain"][domain]["kept_docs"] == results["ingest"]["by_domain"][domain]["kept_docs"]
    assert stats["quality"]["roc_auc"] > 0.9 and "web" in stats["quality"]["keep_top_cuts"]
    assert stats["input_docs"] == results["ingest"]["kept_docs"]
