"""Which documents of each domain go to train, valid and test: three rules, chosen per domain and held-out split.

- fraction: a seeded hash of the id puts a document in valid (bucket below `valid_fraction`), test (next
  `test_fraction`) or train. The split of a document then does not depend on the other documents.
- minimum: when the fraction gives a held-out split of a domain fewer than `min_heldout_docs` documents, the domain's
  documents are laid out in hash order (bucket, then id) as [valid | test | train] and each held-out split is grown to
  the minimum from the front of train; documents placed by the fraction stay where they are (unless train would be
  left empty: then the larger held-out split gives one back). Fractions so large that they leave a domain with more
  documents than held-out splits no train document are cut back the same way. Applied by a per-domain hash
  threshold.
- tail: a domain with too few documents for one train document plus one per held-out split (1 or 2 documents) has
  every document cut before tokenizing: the last `test_fraction` of its characters (rounded up) goes to test, the
  `valid_fraction` before that to valid, the head stays in train. Each piece is tokenized as its own document (its own
  EOS; the cut is at a character, so the tokens at the cut can differ from the whole document's).
A held-out split whose fraction is 0 stays empty; `min_heldout_docs = 0` keeps the fraction rule alone, but for the
one train document.

The plan costs one aggregate over (domain, id) (one row per domain comes back) and, only when some domain falls short,
a top-k window over the short domains' (domain, bucket, id); the text is never read for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

HELDOUT = ("valid", "test")
_HASH_BUCKETS = 1_000_000


def split_bucket(seed: int) -> Column:
    """A document's seeded hash bucket in [0, 1e6): the key of the fraction rule and the rank of the minimum rule."""
    return F.pmod(F.xxhash64(F.lit(seed), F.lit("split"), F.col("id")), F.lit(_HASH_BUCKETS))


def split_column(seed: int, valid_fraction: float, test_fraction: float) -> Column:
    """The fraction rule: valid / test / train by a seeded hash of the id, the same split on every run."""
    u = split_bucket(seed)
    valid_cut = round(valid_fraction * _HASH_BUCKETS)
    test_cut = valid_cut + round(test_fraction * _HASH_BUCKETS)
    return F.when(u < valid_cut, "valid").when(u < test_cut, "test").otherwise("train")


@dataclass
class DomainPlan:
    """How one domain is split: its documents, the rule per held-out split, and the documents each rule gives."""

    docs: int
    rule: dict[str, str]  # held-out split -> "fraction" | "minimum" | "tail" | "none" (fraction 0)
    target: dict[str, int] = field(default_factory=dict)  # held-out documents under the minimum rule
    # Minimum rule: the last (bucket, id) in hash order that goes to valid, and to valid or test.
    thresholds: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass
class SplitPlan:
    """The per-domain split plan of one tokenize run."""

    seed: int
    fractions: dict[str, float]
    domains: dict[str, DomainPlan]

    def tail_domains(self) -> list[str]:
        return sorted(d for d, p in self.domains.items() if "tail" in p.rule.values())

    def keyed(self, docs: DataFrame) -> DataFrame:
        """(domain, split, id, text) for every document, or every piece of a tail-cut document."""
        frac = split_column(self.seed, self.fractions["valid"], self.fractions["test"])
        short = {d: p for d, p in self.domains.items() if p.thresholds}
        split = frac
        if short:
            u, key = split_bucket(self.seed), F.col("domain")

            def upto(which: str) -> Column:
                thr = {d: p.thresholds[which] for d, p in short.items() if which in p.thresholds}
                if not thr:
                    return F.lit(False)
                t_u = _lookup({d: t[0] for d, t in thr.items()}, key)
                t_id = _lookup({d: t[1] for d, t in thr.items()}, key)
                return (u < t_u) | ((u == t_u) & (F.col("id") <= t_id))

            ranked = F.when(upto("valid"), "valid").when(upto("test"), "test").otherwise("train")
            split = F.when(key.isin(list(short)), ranked).otherwise(frac)
        whole = docs.select("domain", split.alias("split"), "id", "text")
        tails = self.tail_domains()
        if not tails:
            return whole
        return whole.where(~F.col("domain").isin(tails)).unionByName(self._tail_pieces(docs.where(
            F.col("domain").isin(tails))))

    def _tail_pieces(self, docs: DataFrame) -> DataFrame:
        n = F.length("text")
        share = {s: F.ceil(n * self.fractions[s]) if self.fractions[s] > 0 else F.lit(0) for s in HELDOUT}
        # The pieces partition the text: a document too short for all three (1-2 characters) fills test, then
        # valid, and leaves train empty, rather than a piece reaching before the text's start and copying it.
        share["test"] = F.least(share["test"], n)
        share["valid"] = F.least(share["valid"], n - share["test"])
        head = n - share["valid"] - share["test"]
        text = F.col("text")
        pieces = F.array(
            F.struct(F.lit("train").alias("split"), text.substr(F.lit(1), head).alias("text")),
            F.struct(F.lit("valid").alias("split"), text.substr(head + 1, share["valid"]).alias("text")),
            F.struct(F.lit("test").alias("split"), text.substr(head + share["valid"] + 1, share["test"]).alias("text")),
        )
        exploded = docs.select("domain", "id", F.explode(pieces).alias("p"))
        # A piece with no characters (a document shorter than three) is left out rather than stored as a bare EOS.
        return (exploded.select("domain", F.col("p.split").alias("split"), "id", F.col("p.text").alias("text"))
                .where(F.length("text") > 0))

    def report(self) -> dict[str, dict[str, Any]]:
        """Per domain: the rule of each held-out split (for stats.json)."""
        return {d: dict(p.rule) for d, p in sorted(self.domains.items())}


def _lookup(values: dict[str, Any], key: Column) -> Column:
    return F.create_map(*chain.from_iterable((F.lit(k), F.lit(v)) for k, v in sorted(values.items())))[key]


def plan_splits(docs: DataFrame, seed: int, valid_fraction: float, test_fraction: float,
                min_heldout_docs: int) -> SplitPlan:
    """Count each domain's documents per fraction split and decide its rule (see the module docstring)."""
    fractions = {"valid": valid_fraction, "test": test_fraction}
    active = [s for s in HELDOUT if fractions[s] > 0]
    frac = split_column(seed, valid_fraction, test_fraction)
    rows = (docs.select("domain", frac.alias("split")).groupBy("domain")
            .agg(F.count(F.lit(1)).alias("docs"),
                 *[F.sum((F.col("split") == s).cast("long")).alias(s) for s in HELDOUT])
            .collect())
    plans: dict[str, DomainPlan] = {}
    for r in rows:
        n, got = int(r["docs"]), {s: int(r[s]) for s in HELDOUT}
        rule = {s: "fraction" if s in active else "none" for s in HELDOUT}
        plan = DomainPlan(docs=n, rule=rule)
        plans[r["domain"]] = plan
        train_left = n - got["valid"] - got["test"]
        if not active or (train_left >= 1 and all(got[s] >= min_heldout_docs for s in active)):
            continue
        if n < 1 + len(active):
            if min_heldout_docs:
                for s in active:
                    rule[s] = "tail"
            continue
        # Short of the minimum, or fractions so large that they leave no train document: both rebalance below.
        m = min(min_heldout_docs, (n - 1) // len(active))
        target = {s: max(got[s], m) if s in active else 0 for s in HELDOUT}
        while target["valid"] + target["test"] > n - 1:  # keep one train document
            s = "valid" if target["valid"] >= target["test"] else "test"
            target[s] -= 1
        for s in active:
            if target[s] != got[s]:
                rule[s] = "minimum"
        plan.target = target
    short = {d: p for d, p in plans.items() if p.target}
    if short:
        _find_thresholds(docs, seed, short)
    return SplitPlan(seed=seed, fractions=fractions, domains=plans)


def _find_thresholds(docs: DataFrame, seed: int, short: dict[str, DomainPlan]) -> None:
    """The (bucket, id) at hash rank target[valid] and target[valid] + target[test] of each short domain."""
    wanted = {d: sorted({p.target["valid"], p.target["valid"] + p.target["test"]} - {0}) for d, p in short.items()}
    top = max(max(w) for w in wanted.values())
    rank = F.row_number().over(Window.partitionBy("domain").orderBy("u", "id"))
    ranked = (docs.where(F.col("domain").isin(list(short))).select("domain", split_bucket(seed).alias("u"), "id")
              .withColumn("rank", rank).where(F.col("rank") <= top))  # a literal bound: Spark keeps a top-k per task
    hits = ranked.where(F.array_contains(_lookup(wanted, F.col("domain")), F.col("rank"))).collect()
    at = {(r["domain"], int(r["rank"])): (int(r["u"]), r["id"]) for r in hits}
    for d, p in short.items():
        if p.target["valid"]:
            p.thresholds["valid"] = at[(d, p.target["valid"])]
        if p.target["test"]:
            p.thresholds["test"] = at[(d, p.target["valid"] + p.target["test"])]
