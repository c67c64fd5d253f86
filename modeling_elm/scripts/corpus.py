"""Build the MovieLens task corpus: ratings -> behavioural and semantic vectors -> the paper's tasks, split by entity.

    python -m modeling_elm.scripts.corpus                          # offline default: ml-latest-small, grounded
    python -m modeling_elm.scripts.corpus --source ~/data/ml-25m --tasks all --movie_space behavioural
    python -m modeling_elm.scripts.corpus --help

A second run with the same settings loads the cached folder instead of rebuilding; what the folder holds is in
`modeling_elm.data.movielens.build`. train.py builds the same corpus from a recipe's `data: movielens:` section.
"""

import json
import logging
from dataclasses import dataclass

from . import command_parser, option
from ..data.movielens.build import MovieLensConfig, build_corpus


@dataclass
class CacheArguments:
    rebuild: bool = option(False, "ignore the cache and build again")


def main(argv=None) -> int:
    config, extra = command_parser(__doc__, "corpus", MovieLensConfig, CacheArguments).parse_args_into_dataclasses(
        args=argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = build_corpus(config, rebuild=extra.rebuild)
    manifest = json.loads((folder / "manifest.json").read_text())
    print(f"\nCorpus: {folder}\nrows: {manifest['counts']['rows']}  spaces: {manifest['spaces']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
