"""Watching what the service sees: replay traffic through the serving path, compare it with training."""
