"""The stages of a search after encoding: retrieval in each shard, merging, fusion and highlighting.

``index.searcher.Searcher`` takes a question through them, and through ``index.rerank`` between fusion and
highlighting.
"""
