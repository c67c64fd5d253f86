"""Write MovieLens' behavioural (ALS) movie vectors as your own data: a domain whose vectors no text encoder made.

    python -m modeling_elm.scripts.movielens_items --output data/movielens-items   # then: recipes/movielens-items.yaml

Writes `items.parquet` (id, vector, title, kind, reach), the one input the bring-your-own recipe's templates need
(what it holds: `modeling_elm.data.movielens.items`). Builds the ml-latest-small corpus first when it is not cached.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from . import command_parser, option
from ..data.movielens.items import write_item_files


@dataclass
class ItemsArguments:
    output: Path = option(Path("data/movielens-items"), "where items.parquet goes")
    corpus: Path | None = option(None, "a MovieLens corpus folder to take the vectors from (default: "
                                       "ml-latest-small's, built when not cached)")


def main(argv=None) -> int:
    (args,) = command_parser(__doc__, "movielens_items", ItemsArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = write_item_files(args.output, args.corpus)
    print(f"Wrote {out / 'items.parquet'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
