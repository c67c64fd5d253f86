"""`ElmProcessor`: tokenizer + chat template + vectors.

The class is defined in `modeling_elm.py` so that a Hub checkpoint carries exactly two code files
(`configuration_elm.py`, `modeling_elm.py`) and still loads with `AutoProcessor(..., trust_remote_code=True)`.
"""

from .modeling_elm import ElmProcessor

__all__ = ["ElmProcessor"]
