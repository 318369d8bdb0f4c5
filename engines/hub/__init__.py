"""Models fetched on first use: registry, verified downloads, cache, atomic writes."""
