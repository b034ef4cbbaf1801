"""analyzer/state."""
