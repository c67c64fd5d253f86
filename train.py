"""Train an ELM: `accelerate launch train.py --config recipes/<name>.yaml` (`--help` lists every option).

The command lives in the package (`modeling_elm/scripts/train.py`, also installed as `elm-train`); this file is
what `accelerate launch` and `torchrun` run from a clone.
"""

import sys

from modeling_elm.scripts.train import main

if __name__ == "__main__":
    sys.exit(main())
