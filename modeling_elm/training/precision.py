"""Which parts of a training step run in bf16, and which stay in float32.

Measured on a 2-core CPU with AVX-512 BF16 (docs/benchmarks.md, `benchmarks/profile_step.py`): bf16 matmuls run 4x
float32's, but the CPU's bf16 attention backward runs ~4x *slower* than float32's, and under autocast a frozen LM is
cast to bf16 again at every step. So stage 1 holds the frozen LM in bf16 once (`hold_frozen_lm`), runs its attention
in float32 on the CPU (`inference.float32_attention`, which generation uses too), keeps the adapters' master weights
in float32, and stage 2 starts again from the LM's float32 weights (`restore_float32_lm`) under ordinary bf16
autocast.
"""

from pathlib import Path

import torch

from ..model.modeling_elm import ElmForCausalLM
from .launch import asked_sharding
from .trainer import is_adapter


def frozen_lm_dtype(stage1_lm_dtype: str, sft_config=None) -> torch.dtype | None:
    """The dtype stage 1 holds the frozen LM in, or None to leave it as loaded (float32).

    `auto`: bf16 when the run trains in bf16 (`--bf16`), except under FSDP or ZeRO-3, which shard parameters of one
    dtype per unit and manage their own casts."""
    if stage1_lm_dtype == "float32":
        return None
    if stage1_lm_dtype == "bfloat16":
        return torch.bfloat16
    if sft_config is None or not sft_config.bf16 or asked_sharding(sft_config):
        return None
    return torch.bfloat16


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
