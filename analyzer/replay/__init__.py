"""analyzer/replay."""
