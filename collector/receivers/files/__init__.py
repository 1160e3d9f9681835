"""The CDR file receiver: CSV files that switches drop into a directory (see `receiver`)."""
