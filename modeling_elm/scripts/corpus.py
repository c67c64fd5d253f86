"""Build the MovieLens task corpus: ratings -> behavioural and semantic vectors -> the paper's tasks, split by entity.

    python -m modeling_elm.scripts.corpus                          # offline default: ml-latest-small, grounded
    python -m modeling_elm.scripts.corpus --source ~/data/ml-25m --tasks all --movie_space behavioural
    python -m modeling_elm.scripts.corpus --help

A second run with the same settings loads the cached folder instead of rebuilding; what the folder holds is in
`modeling_elm.data.movielens.build`. train.py builds the same corpus from a recipe's corpus options.
"""

import json
import logging

from ..data.movielens.build import CorpusConfig, build_corpus


def main(argv=None) -> int:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(CorpusConfig, prog="python -m modeling_elm.scripts.corpus",
                              description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="ignore the cache and build again")
    config, extra = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = build_corpus(config, rebuild=extra.rebuild)
    manifest = json.loads((folder / "manifest.json").read_text())
    print(f"\nCorpus: {folder}\nrows: {manifest['counts']['rows']}  spaces: {manifest['spaces']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
