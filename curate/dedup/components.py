"""Connected components on Spark DataFrames by large-star / small-star (Kiveris et al. 2014).

Edges stay distributed: each round is two DataFrame passes; the edge set converges to a star per component, every
node pointing at the component's smallest id. Lineage is cut by checkpointing every round, so hundreds of rounds
on a big graph do not grow the query plan. Nothing is collected on the driver but a per-round fingerprint.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from curate.errors import InternalError


def _both_ways(edges: DataFrame) -> DataFrame:
    return edges.select("u", "v").unionByName(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))


def large_star(edges: DataFrame) -> DataFrame:
    """Every node u links its larger neighbours to the smallest id of its closed neighbourhood."""
    both = _both_ways(edges)
    m = both.withColumn("m", F.least(F.min("v").over(Window.partitionBy("u")), F.col("u")))
    return m.where(F.col("v") > F.col("u")).select(F.col("v").alias("u"), F.col("m").alias("v")).distinct()


def small_star(edges: DataFrame) -> DataFrame:
    """Every node u links itself and its smaller neighbours to the smallest of them."""
    oriented = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v"))
    m = oriented.withColumn("m", F.min("v").over(Window.partitionBy("u")))
    out = m.select(F.col("v").alias("u"), F.col("m").alias("v")).unionByName(
        m.select(F.col("u"), F.col("m").alias("v")))
    return out.where(F.col("u") != F.col("v")).distinct()


def _fingerprint(edges: DataFrame) -> tuple[int, int]:
    row = edges.agg(F.count(F.lit(1)).alias("n"),
                    F.sum(F.xxhash64("u", "v").cast("decimal(38,0)")).alias("h")).first()
    return int(row["n"]), int(row["h"] or 0)


def connected_components(edges: DataFrame, max_rounds: int = 100) -> tuple[DataFrame, int]:
    """(u, component) for every node that has an edge, component = the smallest id of its component; and the
    number of rounds it took. `edges` has string columns `u`, `v` (undirected; self-loops and repeats allowed)."""
    current = edges.select("u", "v").where(F.col("u") != F.col("v"))
    current = current.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct()
    current = current.checkpoint(eager=True)
    last = _fingerprint(current)
    for rounds in range(1, max_rounds + 1):
        nxt = small_star(large_star(current)).checkpoint(eager=True)
        fp = _fingerprint(nxt)
        current = nxt
        if fp == last:
            # A fixed point of both passes is a star per component pointing at its minimum.
            nodes = current.select("u").unionByName(current.select(F.col("v").alias("u"))).distinct()
            root = current.groupBy("u").agg(F.min("v").alias("component"))
            out = nodes.join(root, "u", "left").select(
                "u", F.least(F.coalesce("component", "u"), F.col("u")).alias("component"))
            return out, rounds
        last = fp
    raise InternalError(f"connected components did not converge in {max_rounds} rounds")
