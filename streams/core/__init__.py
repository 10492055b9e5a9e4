"""Shared by every stage: clock, back-off, logs, records, topics, letters, health, metrics, Kafka admin."""
