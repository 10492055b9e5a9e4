"""The dedup stage: is this version of an event new, and how many new occurrences does it carry."""
