"""Files the collector reads or writes besides its TOML: one module per format, each
holding both the reader and the writer, so that the two cannot drift apart."""
