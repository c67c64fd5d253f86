"""Serving an ELM on an engine that takes prompt embeddings (vLLM): export the LM, ask it through the client."""

from .client import ElmServingClient, ServerError
from .export import export_for_serving

__all__ = ["ElmServingClient", "ServerError", "export_for_serving"]
