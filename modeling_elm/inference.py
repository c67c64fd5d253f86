"""Batched generation and teacher-forced NLL for ELM prompts: what evaluation, the Space and the CLI share."""

from contextlib import contextmanager

import numpy as np
import torch
from tqdm.auto import tqdm


def pick_device(device: str | None = None) -> torch.device:
    """`device` as given, or the accelerator when there is one (CUDA, then Apple MPS), else the CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_batch_size(device: torch.device) -> int:
    """Prompts per generation / scoring batch: a GPU takes many at once; on a CPU more only adds padding."""
    return 64 if device.type == "cuda" else 16


# CPU features that make bf16 matmuls fast (oneDNN uses them): Intel's AMX tiles, or AVX-512's bf16 dot products
# (Intel Cooper Lake and later, AMD Zen 4 and later). Measured: bf16 matmuls 3-6x float32's on either
# (docs/benchmarks.md). Without them torch emulates bf16 and a bf16 model runs slower than float32.
BF16_UNITS = ("amx_bf16", "avx512_bf16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def cpu_matrix_units() -> list[str]:
    """Which of `BF16_UNITS` this CPU has, as torch detects them (empty on other CPUs and architectures)."""
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return [unit for unit in BF16_UNITS if capabilities.get(unit)]


def fast_bf16(device: torch.device | str) -> bool:
    """Whether bf16 computes faster than float32 on `device`: a CUDA card with bf16, or a CPU with bf16 units."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_matrix_units())


def inference_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """`dtype` as asked ("float32", "bfloat16", a torch dtype), or by default ("auto", None) bf16 where the device
    computes it fast (`fast_bf16`) and float32 elsewhere (MPS, old GPUs, CPUs without bf16 units)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in (None, "auto"):
        if dtype not in DTYPES:
            raise ValueError(f"Unknown dtype {dtype!r}: use auto, float32 or bfloat16.")
        return DTYPES[dtype]
    return torch.bfloat16 if fast_bf16(device) else torch.float32


def load_elm(path: str, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
             **load_kwargs):
    """An ELM ready to generate: on `device` (default: `pick_device()`), in `inference_dtype(device, dtype)`, in eval
    mode. In bf16 the adapters stay float32: they are a few MB, and their input statistics and norm are where bf16's
    8-bit mantissa would bite; their soft tokens enter the LM in its dtype."""
    from .model.modeling_elm import ElmForCausalLM

    device = pick_device(str(device) if device is not None else None)
    dtype = inference_dtype(device, dtype)
    model = ElmForCausalLM.from_pretrained(path, dtype=dtype, **load_kwargs)
    if dtype != torch.float32:
        model.model.adapters.float()
    return model.to(device).eval()


FLOAT32_SDPA = "elm_sdpa_float32"


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
    output cast back). torch's CPU flash attention is slow in bf16: its backward took 0.48 s of a 1.7 s stage-1 step
    (float32: a quarter of that), its forward 20% of a bf16 decoding step; generation went from 2.07x to 2.92x
    float32's tokens/s (docs/benchmarks.md). Elsewhere (GPUs, float32 models, other attention implementations)
    nothing changes. It sets the model's attention implementation while inside, so two threads generating with one
    model at once may run one call with the LM's own attention: slower, not wrong."""
    from transformers import AttentionInterface

    config = model.config.get_text_config()
    if model.device.type != "cpu" or config._attn_implementation != "sdpa" or model.dtype == torch.float32:
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


def _per_example_vectors(vectors: dict | None) -> dict | None:
    """{space: (k, dim) array} per example, as the processor takes it; None for text-only prompts."""
    if vectors is None:
        return None
    return {space: [np.asarray(v, dtype=np.float32) for v in np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)]
            for space, rows in vectors.items() if len(rows)}


@torch.no_grad()
def generate_texts(model, processor, prompts: list[str], vectors: list[dict | None], batch_size: int = 16,
                   max_new_tokens: int | None = None, desc: str = "Generating", **generate_kwargs) -> list[str]:
    """Answer every prompt (with placeholders) about its vectors; batched, left-padded, KV cache on. The prompt format
    is the processor's (`processor.prompt`), the decoding the checkpoint's `generation_config`."""
    if len(prompts) != len(vectors):
        raise ValueError(f"{len(prompts)} prompts but {len(vectors)} vector sets.")
    model.eval()
    tokenizer = processor.tokenizer
    texts = [processor.prompt(p) for p in prompts]
    # Similar lengths share a batch: less padding, and left padding stays short.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers = [None] * len(texts)
    settings = {"use_cache": True, "pad_token_id": tokenizer.pad_token_id, **generate_kwargs}
    if max_new_tokens is not None:
        settings["max_new_tokens"] = max_new_tokens
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        chunk = order[start: start + batch_size]
        chunk_vectors = [_per_example_vectors(vectors[i]) for i in chunk]
        batch = processor(text=[texts[i] for i in chunk],
                          vectors=None if all(v is None for v in chunk_vectors) else chunk_vectors,
                          padding_side="left").to(model.device)
        with float32_attention(model):
            output = model.generate(**batch, **settings)
        for i, row in zip(chunk, output[:, batch["input_ids"].shape[1]:]):
            answers[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return answers
