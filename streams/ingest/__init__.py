"""The ingest stage: election, LIST+WATCH, filters, truncation, enrichment, the controller that owns them."""
