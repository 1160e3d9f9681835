"""cdr-collector: redacted, billable call detail records from RADIUS, SIP and JSON, stored exactly once."""
