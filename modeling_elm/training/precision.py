"""Which parts of a training step run in bf16, and which stay in float32.

Measured on a 2-core CPU with AVX-512 BF16 (docs/benchmarks.md, `benchmarks/profile_step.py`): bf16 matmuls run 4x
float32's, but the CPU's bf16 attention backward runs ~4x *slower* than float32's, and under autocast a frozen LM is
cast to bf16 again at every step. So stage 1 holds the frozen LM in bf16 once (`hold_frozen_lm`), runs its attention in
float32 on the CPU (`float32_attention`), keeps the adapters' master weights in float32, and stage 2 starts again from
the LM's float32 weights (`restore_float32_lm`) under ordinary bf16 autocast.
"""

import os
from contextlib import contextmanager
from pathlib import Path

import torch

from ..model.modeling_elm import ElmForCausalLM
from .trainer import is_adapter

FLOAT32_SDPA = "elm_sdpa_float32"


def frozen_lm_dtype(stage1_lm_dtype: str, sft_config=None) -> torch.dtype | None:
    """The dtype stage 1 holds the frozen LM in, or None to leave it as loaded (float32).

    `auto`: bf16 when the run trains in bf16 (`--bf16`), except under FSDP or ZeRO-3, which shard parameters of one
    dtype per unit and manage their own casts."""
    if stage1_lm_dtype == "float32":
        return None
    if stage1_lm_dtype == "bfloat16":
        return torch.bfloat16
    bf16 = bool(sft_config is not None and sft_config.bf16)
    sharded = bool(sft_config is not None and (
        sft_config.fsdp or sft_config.deepspeed
        or any(os.environ.get(f"ACCELERATE_USE_{name}", "").lower() == "true" for name in ("FSDP", "DEEPSPEED"))))
    return torch.bfloat16 if bf16 and not sharded else None


def hold_frozen_lm(model, dtype: torch.dtype) -> None:
    """Every parameter but the adapters' in `dtype`, in place (buffers such as rotary frequencies stay as they are)."""
    for name, parameter in model.named_parameters():
        if not is_adapter(name):
            parameter.data = parameter.data.to(dtype)


def restore_float32_lm(model, stage0: str | Path) -> None:
    """The LM's float32 weights back from stage 0 (stage 1 never changed them; a bf16 copy cast back would have lost
    their low bits), the adapters as trained."""
    reference = ElmForCausalLM.from_pretrained(stage0, dtype=torch.float32).state_dict()
    for name, parameter in model.named_parameters():
        if not is_adapter(name):
            parameter.data = reference[name].to(parameter.device)


def _sdpa_in_float32(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    # CPU autocast lists scaled_dot_product_attention among its bf16 ops: without this it would cast the inputs back.
    with torch.autocast("cpu", enabled=False):
        output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                                 **kwargs)
    return output.to(query.dtype), weights


@contextmanager
def float32_attention(model):
    """While inside, a bf16 LM on the CPU computes scaled-dot-product attention in float32 (its inputs cast up, its
    output cast back): torch's CPU flash-attention backward in bf16 took 0.48 s of a 1.7 s stage-1 step, in float32
    a quarter of that. Elsewhere (GPUs, other attention implementations) nothing changes."""
    from transformers import AttentionInterface

    config = model.config.get_text_config()
    if model.device.type != "cpu" or config._attn_implementation != "sdpa":
        yield
        return
    AttentionInterface.register(FLOAT32_SDPA, _sdpa_in_float32)
    configs = {id(c): c for c in (config, model.model.language_model.config)}.values()
    for c in configs:
        c._attn_implementation_internal = FLOAT32_SDPA
    try:
        yield
    finally:
        for c in configs:
            c._attn_implementation_internal = "sdpa"
