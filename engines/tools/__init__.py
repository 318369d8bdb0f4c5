"""Command-line tools: bench, parity."""
