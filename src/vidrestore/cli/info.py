"""``vidrestore info``: filled in by the pipeline work."""
