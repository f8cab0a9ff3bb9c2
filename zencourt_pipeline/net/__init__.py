"""Outbound HTTP that must be safe against user-supplied URLs."""
