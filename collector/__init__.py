"""cdr-collector: redacted, billable call detail records from RADIUS, SIP and JSON, stored exactly once."""

from collector.compiled import choose

# before any module of the package is imported: compiled hot path, or its sources
choose()
