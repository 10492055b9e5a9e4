"""The Kubernetes API as ingest and the explorer use it: a Protocol with its errors, and the one real client."""
