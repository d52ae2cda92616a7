"""discrete package."""
