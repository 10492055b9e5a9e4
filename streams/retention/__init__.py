"""The retention stage: delete daily indices older than the configured number of days."""
