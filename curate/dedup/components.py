"""Connected components on Spark DataFrames by large-star / small-star (Kiveris et al. 2014).

Edges stay distributed: each round is two DataFrame passes, and the edge set converges to a star per component,
every node pointing at the component's smallest id. The rounds stop as soon as the edges are such a star forest
(every node has at most one smaller neighbour and no node with one is itself a centre): both passes keep every
component connected, so a star forest is the components. Checking that takes one small aggregate over the round's
output, where comparing two rounds' fingerprints would need one more round.

Each round's edges are checkpointed (lineage cut) by the action that checks them, not by a job of their own, so
hundreds of rounds on a big graph do not grow the query plan. (A local checkpoint measured no faster here, and a
reliable one survives the loss of an executor.) Nothing is collected on the
driver but one count per round.
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
    """Every node u links itself and its smaller neighbours to the smallest of them (output edges have u > v)."""
    oriented = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v"))
    m = oriented.withColumn("m", F.min("v").over(Window.partitionBy("u")))
    out = m.select(F.col("v").alias("u"), F.col("m").alias("v")).unionByName(
        m.select(F.col("u"), F.col("m").alias("v")))
    return out.where(F.col("u") != F.col("v")).distinct()


def _not_star_nodes(edges: DataFrame) -> int:
    """For distinct edges with u > v: how many nodes break the star-forest shape (a node with two smaller
    neighbours, or one that both has a smaller neighbour and is some node's smaller neighbour)."""
    ends = edges.select("u", F.lit(1).alias("up"), F.lit(0).alias("down")).unionByName(
        edges.select(F.col("v").alias("u"), F.lit(0).alias("up"), F.lit(1).alias("down")))
    per = ends.groupBy("u").agg(F.sum("up").alias("up"), F.max("down").alias("down"))
    bad = (F.col("up") > 1) | ((F.col("up") > 0) & (F.col("down") > 0))
    return int(per.agg(F.count(F.when(bad, 1)).alias("n")).first()["n"])


def connected_components(edges: DataFrame, max_rounds: int = 100) -> tuple[DataFrame, int]:
    """(u, component) for every node that has an edge to another node, component = the smallest id of its
    component; and the number of rounds it took. `edges` has string columns `u`, `v` (undirected; self-loops and
    repeats allowed)."""
    current = edges.select("u", "v")
    for rounds in range(1, max_rounds + 1):
        current = small_star(large_star(current)).checkpoint(eager=False)
        if _not_star_nodes(current) == 0:
            # A star forest whose centres are smaller than their leaves: each star is a component, its centre
            # the component's smallest id.
            out = current.select("u", F.col("v").alias("component")).unionByName(
                current.select(F.col("v").alias("u"), F.col("v").alias("component"))).distinct()
            return out, rounds
    raise InternalError(f"connected components did not converge in {max_rounds} rounds")


# Up to this many edges, one task's union-find is far cheaper than the rounds' dozens of small jobs: a graph this size
# is a few hundred MB in one Python worker at most, and it stays on an executor (never the driver).
ONE_TASK_MAX_EDGES = 2_000_000


def components_in_one_task(edges: DataFrame) -> DataFrame:
    """The same (u, component) rows as `connected_components`, from a union-find over all edges in one task: for
    graphs of at most ONE_TASK_MAX_EDGES edges."""
    return edges.select("u", "v").coalesce(1).mapInArrow(_union_find, "u string, component string")


def _union_find(batches):
    import pyarrow as pa

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for batch in batches:
        for u, v in zip(batch.column("u").to_pylist(), batch.column("v").to_pylist()):
            if u == v:
                continue
            parent.setdefault(u, u)
            parent.setdefault(v, v)
            a, b = find(u), find(v)
            if a != b:  # the smaller id is the root, so a root is its component's smallest id
                if a < b:
                    parent[b] = a
                else:
                    parent[a] = b
    nodes = sorted(parent)
    yield pa.RecordBatch.from_arrays([pa.array(nodes, pa.string()), pa.array([find(x) for x in nodes], pa.string())],
                                     names=["u", "component"])
