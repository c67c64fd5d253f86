"""Target writers for the MovieLens tasks: `grounded` (from the data, offline, deterministic) and `teacher` (an LM)."""
