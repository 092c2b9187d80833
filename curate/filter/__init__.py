"""The filter stage: datatrove's heuristic presets, fastText language ID and a fastText quality classifier."""

# curate.config (PipelineConfig) imports this package's config; loading it first makes either import order work.
import curate.config  # noqa: F401
