"""Dedup: exact duplicates by a hash of the normalized text, near duplicates by MinHash LSH, in Spark.

normalize.py (text -> words), minhash.py (shingles -> signatures), lsh.py (bands, S-curve, band keys),
components.py (connected components on DataFrames), stage.py (the stage), config.py (DedupConfig).
"""

# curate.config imports DedupConfig for PipelineConfig, and DedupConfig subclasses curate.config.StrictModel: load
# curate.config first, so whichever of the two is imported first, StrictModel exists when config.py needs it.
import curate.config  # noqa: E402,F401
