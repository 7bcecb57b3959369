"""The encoders: a text's vector, from models shipped in PyPI packages (never downloaded)."""
