"""landscapes package."""
