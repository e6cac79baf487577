"""One module per schema revision of the history database."""
