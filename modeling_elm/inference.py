"""Batched generation and teacher-forced NLL for ELM prompts: what evaluation, the Space and the CLI share."""

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


def inference_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device computes it fast (CUDA with bf16 support); float32 elsewhere (CPU, MPS, old GPUs)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_elm(path: str, device: str | torch.device | None = None, **load_kwargs):
    """An ELM ready to generate: on `device` (default: `pick_device()`), in its `inference_dtype`, in eval mode."""
    from .model.modeling_elm import ElmForCausalLM

    device = pick_device(str(device) if device is not None else None)
    model = ElmForCausalLM.from_pretrained(path, dtype=inference_dtype(device), **load_kwargs)
    return model.to(device).eval()


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
        output = model.generate(**batch, **settings)
        for i, row in zip(chunk, output[:, batch["input_ids"].shape[1]:]):
            answers[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return answers
