"""Loading a trained ELM on a device and dtype, and batched generation for ELM prompts: what evaluation, the Space
and the CLI share (teacher-forced NLL of reference texts lives in `evaluation/nll.py`)."""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


class LoadError(ValueError):
    """A model that cannot be loaded as asked (a folder without weights, a damaged weights file, a device this machine
    lacks), said in one line with the fix: the command-line tools print it instead of a traceback."""


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(device: str | None = None) -> torch.device:
    """`device` as given, or the accelerator when there is one (CUDA, then Apple MPS), else the CPU. A device this
    machine lacks is a `LoadError` now, not a CUDA error deep inside the first model that moves there."""
    if device:
        try:
            chosen = torch.device(device)
        except RuntimeError:
            raise LoadError(f"Unknown device {device!r}: use cuda, cuda:<index>, mps or cpu.") from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise LoadError(f"--device {device}: no GPU is available on this machine; use --device cpu.")
        if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise LoadError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), numbered from "
                            "0; pick one of those or use --device cpu.")
        if chosen.type == "mps" and not _mps_available():
            raise LoadError(f"--device {device}: Apple's MPS is not available on this machine; use --device cpu.")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
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
    from safetensors import SafetensorError

    from .model.modeling_elm import ElmForCausalLM

    device = pick_device(str(device) if device is not None else None)
    dtype = inference_dtype(device, dtype)
    check_weights(path)
    try:
        model = ElmForCausalLM.from_pretrained(path, dtype=dtype, **load_kwargs)
    except SafetensorError as error:  # safetensors names neither the file nor a fix
        raise LoadError(_damaged_weights_message(path, error, load_kwargs.get("revision"))) from None
    except OSError as error:  # a Hub id that is not there, or not reachable: transformers' message says which
        raise LoadError(f"Could not load an ELM from {path}: {error}") from None
    if dtype != torch.float32:
        model.model.adapters.float()
    return model.to(device).eval()


def check_weights(path: str) -> None:
    """A `LoadError` when `path` is a local model folder without weights (a config.json alone, say): said before
    anything else is asked of the folder, such as the corpus its training run records. A Hub id is left to
    `from_pretrained`."""
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

    from .checkpoints import STAGE_MARKER, looks_local

    folder = Path(path).expanduser()
    if not looks_local(str(path)) or not folder.is_dir():
        return
    if any((folder / name).is_file() for name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME,
                                                  WEIGHTS_INDEX_NAME)):
        return
    record = "" if (folder / STAGE_MARKER).is_file() else f" nor the record of a train.py run ({STAGE_MARKER})"
    raise LoadError(f"{path} holds no trained ELM: no weights ({SAFE_WEIGHTS_NAME}){record}. Pass the output_dir of "
                    "a finished train.py run (e.g. checkpoints/elm-quick) or a Hub id, or copy or download the "
                    "model's files again.")


def _damaged_weights_message(path: str, error: Exception, revision: str | None = None) -> str:
    """Which weights file of `path` safetensors could not read, and how to get a whole one."""
    from safetensors import SafetensorError, safe_open

    folder = Path(path).expanduser()
    if folder.is_dir():
        files = sorted(folder.glob("*.safetensors"))
        fix = ("copy or download it again, or re-run the train.py command that wrote it (a killed save leaves a "
               "partial file)")
    else:  # a Hub id: the file sits in the Hugging Face cache
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "model.safetensors", revision=revision)
        files = [Path(cached)] if isinstance(cached, str) else []
        fix = "download it again: delete it from the Hugging Face cache, or load with force_download=True"
    damaged = []
    for file in files:
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError):
            damaged.append(str(file))
    where = ", ".join(damaged) if damaged else f"A weights file of {path}"
    return f"{where} is damaged ({error}): {fix}."


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
    """{space: (k, dim) array} per example, as the processor takes it; None for text-only prompts. Each space's
    value is one vector (dim,) or several (k, dim): an array, a tensor or lists of floats."""
    if vectors is None:
        return None
    return {space: list(rows) for space, rows in
            ((space, _float_rows(space, given)) for space, given in vectors.items()) if len(rows)}


def _float_rows(space: str, given) -> np.ndarray:
    """`given` as a float32 (k, dim) array, or a ValueError saying what to pass. Checked before any cast: a cast to
    float32 would drop an imaginary part with a mere warning, and fail on text in numpy's words."""
    shapes = "pass one vector of shape (dim,) or several as (n, dim): an array, a tensor or lists of floats"
    if isinstance(given, torch.Tensor):
        given = given.detach().cpu()
        given = given if given.is_complex() else given.float()  # numpy has no bf16
    try:
        array = np.asarray(given)
    except (ValueError, TypeError) as error:  # rows of different lengths, or objects numpy cannot hold
        raise ValueError(f"Vectors for space {space!r} are not one array of numbers ({str(error)[:80]}): "
                         f"{shapes}.") from None
    if array.dtype.kind not in "biufc":
        got = "text" if array.dtype.kind in "US" else f"{type(given).__name__} of {array.dtype}"
        raise ValueError(f"Vectors for space {space!r} must be numbers, got {got}: {shapes}.")
    if array.size == 0:
        return np.zeros((0, 0), np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"Vectors for space {space!r} have shape {array.shape}: {shapes}.")
    # Complex values go on uncast: the processor refuses them, saying what to pass instead.
    return array if array.dtype.kind == "c" else array.astype(np.float32)


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
