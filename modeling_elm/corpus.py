"""`python -m modeling_elm.corpus`: Build (or find in the cache) the MovieLens task corpus.

The code is in `modeling_elm.data.corpus`.
"""

import sys

from .data.corpus import main

if __name__ == "__main__":
    sys.exit(main())
