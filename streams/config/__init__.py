"""The worker's settings: one typed frozen object, its value parsers and the pattern language."""
