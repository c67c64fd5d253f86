"""`python -m modeling_elm.evaluate`: Evaluate a trained ELM on held-out entities.

The code is in `modeling_elm.evaluation.evaluate`.
"""

import sys

from .evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
