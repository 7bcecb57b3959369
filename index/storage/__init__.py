"""What a build writes and a search reads: vector stores, BM25, the vocabulary, hubness, the manifest and the
build folders on disk, whole or in shards."""
