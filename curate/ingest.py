"""Ingest: validate and label raw records; every record ends in kept/ or quarantine/, and the counts reconcile."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from rich.markup import escape

from curate.ingest_config import IngestConfig
from curate.console import console
from curate.sources import (DOC_COLUMNS, QUARANTINE_COLUMNS, list_inputs, read_records,
                            resolve_duplicate_ids_of_cached)
from curate.stage_output import StageOutput, output_partitions, summarize


def run_ingest(spark: SparkSession, cfg: IngestConfig, out: str, overwrite: bool = False) -> dict[str, Any]:
    """Read `cfg.inputs`, write kept/ (Parquet partitioned by domain), quarantine/, stats.json and _SUCCESS to `out`."""
    listing = list_inputs(spark, cfg.inputs)
    listing.warn_skipped("ingest")
    # A rule that matches no input file labels nothing (a wrong path, most likely): say so before the long read.
    unmatched = [r for r in cfg.domain_rules if not any(r.matches(f.rel) for f in listing.files)]
    for r in unmatched:
        rule = escape(f"{r.pattern!r} -> {r.domain!r}")
        console.print(f"[yellow]ingest: domain rule {rule} matches no input file[/]")
    stage = StageOutput(spark, out, "ingest", cfg.inputs, overwrite)
    records = read_records(spark, listing, cfg).persist()
    try:
        docs, dup_quarantine = resolve_duplicate_ids_of_cached(records.where(F.col("kind") == "doc"))
        quarantine = records.where(F.col("kind") == "bad").select(*QUARANTINE_COLUMNS).unionByName(dup_quarantine)
        parts = output_partitions(listing.total_bytes, cfg.output_partitions)
        stage.write("kept", docs.select(*DOC_COLUMNS), partitions=parts, by_domain=True, tally=["domain"])
        stage.write("quarantine", quarantine, partitions=1, sort_by=("source", "line"), tally=["reason"])
        per_file = (
            records.groupBy("source")
            .agg(F.count(F.when(F.col("kind") != "blank", 1)).alias("records"),
                 F.count(F.when(F.col("kind") == "blank", 1)).alias("blank_lines"))
            .orderBy("source")
            .collect()
        )
    finally:
        records.unpersist()
    kept = stage.tallies["kept"]
    quarantined_by_reason = {r["reason"]: r["docs"] for r in stage.tallies["quarantine"]}
    quarantined = sum(quarantined_by_reason.values())
    records_seen = {r["source"]: r["records"] for r in per_file}
    stats = summarize(kept, [], input_docs=sum(records_seen.values()))
    stats.update(
        quarantined_docs=quarantined,
        quarantined_by_reason=quarantined_by_reason,
        blank_lines=sum(r["blank_lines"] for r in per_file),
        input_files=len(listing.files),
        input_bytes=listing.total_bytes,
        empty_files=sorted(f.rel for f in listing.files if records_seen.get(f.rel, 0) == 0),
        skipped_files=[s.rel for s in listing.skipped],
        skipped_by_reason=listing.skipped_by_reason(),
        unmatched_domain_rules=[r.model_dump() for r in unmatched],
        config=cfg.model_dump(),
    )
    for name in stats["empty_files"]:
        console.print(f"[yellow]ingest: {name} holds no records[/]")
    return stage.finish(stats)
