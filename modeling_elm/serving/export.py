"""Export a trained ELM for a serving engine: the wrapped LM as a plain transformers checkpoint, and the ELM's input
side next to it. (Command: `python -m modeling_elm.scripts.export`.)

An ELM is an LM that reads some of its input as soft tokens. An engine that accepts prompt embeddings (vLLM's
`--enable-prompt-embeds`) therefore serves the LM unchanged, and the client computes what the LM reads:

    <output_dir>/lm/      the LM (trained weights, its head, tokenizer with chat template and placeholders, and a
                          generation_config holding the ELM's decoding defaults): any engine loads it as a plain LM
    <output_dir>/input/   the input side: the ELM config, token embeddings + adapters (with their standardisation
                          statistics), and the processor with its system prompt; `ElmServingClient` loads it
"""

import json
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)
LM_FOLDER, INPUT_FOLDER = "lm", "input"
EXPORT_MARKER = "elm_export.json"


def language_model_of(model) -> torch.nn.Module:
    """The ELM's LM as the plain `AutoModelForCausalLM` of its family, sharing the ELM's trained weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        causal = AutoModelForCausalLM.from_config(model.config.text_config)
    state = {f"{causal.base_model_prefix}.{k}": v for k, v in model.model.language_model.state_dict().items()}
    head = next(name for name, module in causal.named_modules() if module is causal.get_output_embeddings())
    state[f"{head}.weight"] = model.lm_head.weight
    missing, unexpected = causal.load_state_dict(state, strict=False, assign=True)
    tied = {f"{head}.weight"} if getattr(causal.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"The ELM's LM does not map onto {type(causal).__name__}: missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}.")
    return causal


def input_state(model) -> dict[str, torch.Tensor]:
    """What turns a prompt into embeddings: the token embedding table and the adapters (weights and statistics)."""
    embeddings = model.get_input_embeddings()
    embed_name = next(name for name, module in model.named_modules() if module is embeddings)
    return {k: v for k, v in model.state_dict().items()
            if k.startswith(f"{embed_name}.") or k.startswith("model.adapters.")}


def export_for_serving(model_path: str, output_dir: str | Path) -> Path:
    """Write `<output_dir>/lm` and `<output_dir>/input` from the trained ELM at `model_path` (module docstring)."""
    from ..checkpoints import check_trained_elm
    from ..model.modeling_elm import ElmForCausalLM
    from ..model.processing_elm import ElmProcessor

    check_trained_elm(model_path)
    output_dir = Path(output_dir)
    model = ElmForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    processor = ElmProcessor.from_pretrained(model_path)

    lm = language_model_of(model)
    lm.generation_config = model.generation_config  # the ELM's decoding defaults, placeholders suppressed
    lm.save_pretrained(output_dir / LM_FOLDER)
    processor.tokenizer.save_pretrained(output_dir / LM_FOLDER)  # chat template and placeholder tokens included

    model.save_pretrained(output_dir / INPUT_FOLDER, state_dict=input_state(model))
    processor.save_pretrained(output_dir / INPUT_FOLDER)
    (output_dir / EXPORT_MARKER).write_text(json.dumps({
        "source": str(model_path), "lm": LM_FOLDER, "input": INPUT_FOLDER,
        "spaces": {name: {"dim": s["dim"], "placeholder": s["placeholder"], "num_tokens": s["num_tokens"]}
                   for name, s in model.config.embedding_spaces.items()},
        "serve": f"vllm serve {output_dir / LM_FOLDER} --enable-prompt-embeds --dtype float32",
    }, indent=2))
    logger.info("Exported %s: serve %s, ask through ElmServingClient.from_export(%r, url)", model_path,
                output_dir / LM_FOLDER, str(output_dir))
    return output_dir
