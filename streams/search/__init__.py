"""The sink stage: the search engine client and bulk indexing with its guarantees."""
