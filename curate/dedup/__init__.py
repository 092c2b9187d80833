"""Dedup: exact duplicates by a hash of the normalized text, near duplicates by MinHash LSH, in Spark.

normalize.py (text -> words), minhash.py (shingles -> signatures), lsh.py (bands, S-curve, band keys),
components.py (connected components on DataFrames), stage.py (the stage), config.py (DedupConfig).
"""
