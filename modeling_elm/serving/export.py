"""Export a trained ELM for a serving engine: the wrapped LM as a plain transformers checkpoint, and the ELM's input
side next to it. (Command: `python -m modeling_elm.scripts.export`.)

An ELM is an LM that reads some of its input as soft tokens. An engine that accepts prompt embeddings (vLLM's
`--enable-prompt-embeds`) therefore serves the LM unchanged, and the client computes what the LM reads:

    <output_dir>/lm/      the LM (trained weights, its head, tokenizer with chat template and placeholders, and a
                          generation_config holding the ELM's decoding defaults): any engine loads it as a plain LM
    <output_dir>/input/   the input side: the ELM config, token embeddings + adapters (with their standardisation
                          statistics), and the processor with its system prompt; `ElmServingClient` loads it

Both folders record the export's id, a hash of the LM's weights (`ID_FILE`): `serve` names the served model after it,
and the client refuses a server whose LM is not the one its input side was trained with (same shapes would otherwise
give another model's answers without a sign). Exporting again replaces `lm/` and `input/` whole, so no file of an
earlier export (an old weight shard) lies beside the new LM.
"""

import hashlib
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import torch

logger = logging.getLogger(__name__)
LM_FOLDER, INPUT_FOLDER = "lm", "input"
EXPORT_MARKER = "elm_export.json"
ID_FILE = "elm_export_id"
STAGING = ".export-"  # where an export is written before it replaces the last one


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


def weights_id(folder: str | Path) -> str:
    """A hash of the weight files in `folder`: two exports share it exactly when their LMs are the same weights (an
    export's id, which the engine serves under and the client checks)."""
    files = sorted(path for path in Path(folder).iterdir() if path.suffix in (".safetensors", ".bin"))
    if not files:
        raise FileNotFoundError(f"No weight files in {folder} to identify the export by.")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as weights:
            while chunk := weights.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def export_id(folder: str | Path) -> str | None:
    """The id an export's `lm/` or `input/` folder records (None for an export written before exports had one)."""
    path = Path(folder) / ID_FILE
    return path.read_text().strip() if path.is_file() else None


def served_name(identity: str) -> str:
    """The name an engine serves an export under, which the client compares with its own export's id."""
    return f"elm-{identity}"


def id_in_served_name(name: str) -> str | None:
    """The export id in a name `served_name` made; None for any other (a path, a name given by hand)."""
    match = re.fullmatch(r"elm-([0-9a-f]{16})", name)
    return match.group(1) if match else None


def is_trained_elm(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("model_type") == "elm"
    except (OSError, ValueError):
        return False


def export_target(folder: str | Path) -> Path:
    """Where to export for a command that was given `folder` in place of an export: beside a trained ELM, in
    exports/ (never into the ELM itself, which export refuses), else `folder` itself."""
    folder = Path(folder)
    return Path("exports") / folder.resolve().name if is_trained_elm(folder) else folder


def export_command(folder: str | Path) -> str:
    """The command that makes an export out of what `folder` holds (`export_target` says where it goes)."""
    source = folder if is_trained_elm(folder) else "<trained ELM folder>"
    return f"python -m modeling_elm.scripts.export --model {source} --output_dir {export_target(folder)}"


def check_output_dir(output_dir: Path) -> None:
    """A ValueError unless `output_dir` is new, empty or an earlier export (whose lm/ and input/ get replaced)."""
    if not output_dir.exists() or (output_dir / EXPORT_MARKER).is_file():
        return
    if not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file; pass a folder for the export, e.g. exports/elm-quick.")
    if is_trained_elm(output_dir):
        raise ValueError(f"--output_dir {output_dir} is a trained ELM, not an export; export it into a folder of its "
                         f"own: {export_command(output_dir)}")
    if any(not entry.name.startswith(STAGING) for entry in output_dir.iterdir()):
        raise ValueError(f"--output_dir {output_dir} holds files but no ELM export (no {EXPORT_MARKER}), and the "
                         "export's files would mix with them; pass a new or empty folder, or empty this one.")


def export_for_serving(model_path: str, output_dir: str | Path) -> Path:
    """Write `<output_dir>/lm` and `<output_dir>/input` from the trained ELM at `model_path` (module docstring)."""
    from ..checkpoints import check_trained_elm
    from ..model.modeling_elm import ElmForCausalLM
    from ..model.processing_elm import ElmProcessor

    check_trained_elm(model_path)
    output_dir = Path(output_dir)
    check_output_dir(output_dir)
    model = ElmForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    processor = ElmProcessor.from_pretrained(model_path)

    output_dir.mkdir(parents=True, exist_ok=True)
    # Written aside and swapped in whole, so an earlier export's files (a shard the new LM does not have) are gone, and
    # an export that fails while writing leaves the earlier one as it was.
    for leftover in output_dir.glob(f"{STAGING}*"):  # an export killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=output_dir))
    try:
        lm = language_model_of(model)
        lm.generation_config = model.generation_config  # the ELM's decoding defaults, placeholders suppressed
        lm.save_pretrained(staging / LM_FOLDER)
        processor.tokenizer.save_pretrained(staging / LM_FOLDER)  # chat template and placeholder tokens included

        model.save_pretrained(staging / INPUT_FOLDER, state_dict=input_state(model))
        processor.save_pretrained(staging / INPUT_FOLDER)
        identity = weights_id(staging / LM_FOLDER)
        for folder in (LM_FOLDER, INPUT_FOLDER):
            (staging / folder / ID_FILE).write_text(identity)
            shutil.rmtree(output_dir / folder, ignore_errors=True)
            (staging / folder).rename(output_dir / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (output_dir / EXPORT_MARKER).write_text(json.dumps({
        "source": str(model_path), "id": identity, "lm": LM_FOLDER, "input": INPUT_FOLDER,
        "spaces": {name: {"dim": s["dim"], "placeholder": s["placeholder"], "num_tokens": s["num_tokens"]}
                   for name, s in model.config.embedding_spaces.items()},
        "serve": f"vllm serve {output_dir / LM_FOLDER} --enable-prompt-embeds --dtype float32 "
                 f"--served-model-name {served_name(identity)}",
    }, indent=2))
    logger.info("Exported %s: serve %s, ask through ElmServingClient.from_export(%r, url)", model_path,
                output_dir / LM_FOLDER, str(output_dir))
    return output_dir
