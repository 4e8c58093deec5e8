"""Developer tools run from the repository (never deployed): ``python -m tools.<tool>``."""
