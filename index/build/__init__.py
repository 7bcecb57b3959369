"""Building an index: spans, embeddings (in this process or on a Ray cluster), BM25 and the atomic swap."""
