"""Build WordNet 3.0 as a second ELM domain: noun synsets, their MiniLM vectors and their texts, as your own data.

    python -m modeling_elm.scripts.wordnet --output data/wordnet     # then: train.py --config recipes/wordnet.yaml

Reads Debian's `wordnet-base` files and writes `synsets.parquet` and `texts.jsonl`, the two inputs the
bring-your-own-data recipe takes (what they hold: `modeling_elm.data.wordnet`).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from . import command_parser, option
from ..data.wordnet import build_wordnet


@dataclass
class WordNetArguments:
    output: Path = option(Path("data/wordnet"), "where the two files go")
    max_synsets: int = option(12000, "seeded sample of noun synsets")
    seed: int = option(0, "seed of the sample")
    wordnet: str | None = option(None, "folder with data.noun (default: Debian's)")
    encoder: str | None = option(None, "sentence-transformers model (default: the packaged MiniLM)")


def main(argv=None) -> int:
    (args,) = command_parser(__doc__, "wordnet", WordNetArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = build_wordnet(args.output, args.max_synsets, args.seed, args.wordnet, args.encoder)
    print(f"Wrote {out / 'synsets.parquet'} and {out / 'texts.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
