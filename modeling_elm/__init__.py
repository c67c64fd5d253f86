"""ELM, the Embedding Language Model, for transformers.

Importing the package registers ELM with the Auto classes, so `AutoModelForCausalLM.from_pretrained(folder)` works
on any saved ELM checkpoint, and marks the classes for the Hub so every `save_pretrained` writes the remote code
(`configuration_elm.py`, `modeling_elm.py`, `processing_elm.py`) and `auto_map` next to the weights.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

from .model.configuration_elm import ElmConfig
from .model.modeling_elm import ElmAdapter, ElmForCausalLM, ElmModel, ElmPreTrainedModel
from .model.processing_elm import ElmProcessor

AutoConfig.register(ElmConfig.model_type, ElmConfig, exist_ok=True)
AutoModel.register(ElmConfig, ElmModel, exist_ok=True)
AutoModelForCausalLM.register(ElmConfig, ElmForCausalLM, exist_ok=True)
AutoProcessor.register(ElmConfig, ElmProcessor, exist_ok=True)

ElmConfig.register_for_auto_class()
ElmModel.register_for_auto_class("AutoModel")
ElmForCausalLM.register_for_auto_class("AutoModelForCausalLM")
ElmProcessor.register_for_auto_class("AutoProcessor")

__version__ = "0.1.0"
__all__ = ["ElmAdapter", "ElmConfig", "ElmForCausalLM", "ElmModel", "ElmPreTrainedModel", "ElmProcessor"]
