"""Documents and their spans: reading the corpus, metadata, languages, sentences and passages with exact offsets.

The bottom stage: it imports nothing else of the project but ``index.errors`` (pyproject.toml's contracts).
"""
