"""Write MovieLens' behavioural (ALS) movie vectors as your own data: a domain whose vectors no text encoder made.

    python -m modeling_elm.scripts.movielens_items --output data/movielens-items   # then: recipes/movielens-items.yaml

Writes `items.parquet` (id, vector, title, kind, reach), the one input the bring-your-own recipe's templates need
(what it holds: `modeling_elm.data.movielens.items`). Builds the ml-latest-small corpus first when it is not cached.
"""

import argparse
import logging
from pathlib import Path

from ..data.movielens.items import write_item_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling_elm.scripts.movielens_items",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("data/movielens-items"), help="where items.parquet goes")
    parser.add_argument("--corpus", type=Path, default=None, help=(
        "a MovieLens corpus folder to take the vectors from (default: ml-latest-small's, built when not cached)"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = write_item_files(args.output, args.corpus)
    print(f"Wrote {out / 'items.parquet'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
