"""The model itself: exactly the three files that travel to the Hub with every checkpoint (`trust_remote_code`).

They import torch, transformers and each other, nothing else: a clean environment that never installed this package
loads a checkpoint from them alone.
"""
