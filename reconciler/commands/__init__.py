"""One module per command: plain functions that return values; `cli.py` only wires and prints."""
