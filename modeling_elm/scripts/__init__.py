"""The package's commands, one file each, run as `python -m modeling_elm.scripts.<name>` or as the `elm-<name>`
console script pip installs: corpus, wordnet, evaluate, describe, assemble, export, serve. Training is the top-level
`train.py`, which `accelerate launch` runs. Each command parses its options and calls library code; nothing else
imports a command."""
