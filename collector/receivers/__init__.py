"""Receivers: turn what arrives on the network into CallRecords."""
