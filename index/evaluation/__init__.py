"""Scoring retrieval against question sets (SQuAD-format JSON and JSONL)."""
