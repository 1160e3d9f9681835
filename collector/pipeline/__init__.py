"""Processors: plain synchronous functions on records (normalization, redaction); no I/O."""
