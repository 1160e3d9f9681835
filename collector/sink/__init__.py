"""Sinks: where redacted records become durable (PostgreSQL, the local spool)."""
