"""Training (the `[train]` extra; the only part of the package that imports TRL): arguments, the stages, the
trainer and its collator, one callback per job."""
