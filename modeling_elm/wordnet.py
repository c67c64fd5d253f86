"""`python -m modeling_elm.wordnet`: Build the WordNet word-vector recipe's data.

The code is in `modeling_elm.data.wordnet`.
"""

import sys

from .data.wordnet import main

if __name__ == "__main__":
    sys.exit(main())
