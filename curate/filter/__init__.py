"""The filter stage: datatrove's heuristic presets, fastText language ID and a fastText quality classifier."""
