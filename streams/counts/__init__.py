"""The count stage: windows, keys and per-batch aggregation of occurrences."""
