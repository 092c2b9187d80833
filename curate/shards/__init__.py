"""Training shards: documents drawn from the train datasets by the mixture weights, and their verification."""
