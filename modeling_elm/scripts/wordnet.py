"""Build WordNet 3.0 as a second ELM domain: noun synsets, their MiniLM vectors and their texts, as your own data.

    python -m modeling_elm.scripts.wordnet --output data/wordnet     # then: train.py --config recipes/wordnet.yaml

Reads Debian's `wordnet-base` files and writes `synsets.parquet` and `texts.jsonl`, the two inputs the
bring-your-own-data recipe takes (what they hold: `modeling_elm.data.wordnet`).
"""

import argparse
import logging
from pathlib import Path

from ..data.wordnet import build_wordnet


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling_elm.scripts.wordnet",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("data/wordnet"), help="where the two files go")
    parser.add_argument("--max_synsets", "--max-synsets", type=int, default=12000, help="seeded sample of noun synsets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wordnet", default=None, help="folder with data.noun (default: Debian's)")
    parser.add_argument("--encoder", default=None, help="sentence-transformers model (default: packaged MiniLM)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = build_wordnet(args.output, args.max_synsets, args.seed, args.wordnet, args.encoder)
    print(f"Wrote {out / 'synsets.parquet'} and {out / 'texts.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
