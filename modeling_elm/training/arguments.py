"""What `train.py` adds to TRL's `SFTConfig` (ElmArguments), and the checks run before anything is built: an output
folder that holds something else than an ELM run, SFTConfig options an ELM run would ignore, a placeholder in the
system prompt, and prompts too long for `max_length`."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..base_models import DEFAULT_BASE_MODEL, resolve_base_model
from ..checkpoints import STAGE_MARKER
from ..model.processing_elm import ElmProcessor

DEFAULT_SYSTEM_PROMPT = "You describe movies and viewers' tastes."


@dataclass
class ElmArguments:
    """What `train.py` adds to TRL's `SFTConfig`: the model to assemble, the data, and the per-stage settings."""

    # Model
    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={"help": (
        "causal LM to wrap: Hub id or folder (offline, SmolLM2-135M-Instruct comes from the packaged GGUF)")})
    num_tokens: int = field(default=16, metadata={"help": (
        "soft tokens per vector; the paper used 1, which a small LM barely reads (docs/results.md: 16 reads best per "
        "step on CPU)")})
    init_from: str | None = field(default=None, metadata={"help": (
        "a trained ELM (folder) to continue from instead of wrapping base_model: its LM, adapters and input "
        "statistics; for a curriculum (e.g. what_kind first, then the paper's tasks). Its spaces must include the "
        "corpus' spaces")})
    adapter_hidden_size: int | None = field(default=None, metadata={"help": "adapter MLP width; default: the LM's"})
    attn_implementation: str | None = field(default=None, metadata={"help": (
        "the LM's attention: sdpa (default), eager, flex_attention, flash_attention_2, or a Hub kernel. Padding-free "
        "batches under sdpa/eager build a (tokens x tokens) mask; on a GPU pair --padding_free with flex_attention or "
        "flash_attention_2, which attend within each row only")})
    standardize_inputs: bool = field(default=True, metadata={"help": (
        "centre and scale each vector dimension by the training vectors' statistics before the adapter (stored in "
        "the checkpoint)")})
    vector_noise: float = field(default=0.0, metadata={"help": (
        "Gaussian noise added to every training vector, in units of each dimension's spread (0.1: a tenth of a "
        "standard deviation), so the adapter also learns the neighbourhood of the data, where interpolations and "
        "concept moves land")})
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT, metadata={"help": (
        "short on purpose: a long system prompt doubles the tokens of every step ('' for none)")})
    # Dataset
    data: dict | None = field(default=None, metadata={"help": (
        "the training data, a recipe's YAML mapping: movielens: {...} (MovieLens' options: python -m "
        "modeling_elm.scripts.corpus --help) or your own (id, vector, text) files (spaces, texts, templates; "
        "docs/your-own-vectors.md)")})
    corpus_path: str | None = field(default=None, metadata={"help": (
        "a built corpus folder; default: build (or find in the cache) the one the corpus options describe")})
    max_train_rows: int | None = field(default=None, metadata={"help": "train on a seeded sample of N rows"})
    eval_rows: int = field(default=256, metadata={"help": "held-out rows for eval_loss, when eval_strategy is set"})
    batch_tokens: int | None = field(default=None, metadata={"help": (
        "batch by tokens: rows per device step = this / the mean tokenized row length (replaces "
        "per_device_train_batch_size). With --padding_free true every step then holds about this many real tokens; "
        "e.g. 65536 for a 135M model on one GPU, where 32 rows of ~80 tokens leave the card idle")})
    # Training: stage 1 (adapters only, LM frozen)
    stage1_learning_rate: float = field(default=4e-3, metadata={"help": (
        "higher than stage 2's: only the small adapter moves, and it starts from nothing (4e-3 read better than 2e-3 "
        "on MovieLens and tied on WordNet: docs/your-own-vectors.md)")})
    stage1_max_steps: int = field(default=-1, metadata={"help": "steps of stage 1 (-1: stage1_epochs)"})
    stage1_epochs: float = field(default=1.0, metadata={"help": "epochs of stage 1 when stage1_max_steps is -1"})
    stage1_stop_loss: float | None = field(default=None, metadata={"help": (
        "end stage 1 early once the logged training loss reaches this")})
    stage1_lm_dtype: str = field(default="auto", metadata={"help": (
        "the frozen LM's weights during stage 1: bfloat16 (held in bf16, no cast per step; the adapters keep float32 "
        "master weights), float32, or auto: bfloat16 when the run trains in bf16 (--bf16, the default on a GPU and on "
        "CPUs with bf16 matrix units) and is not sharded. Stage 2 starts again from the float32 weights")})
    # Training: stage 2 (the whole model, or LoRA)
    stage2: str = field(default="full", metadata={"help": "'full' (the paper), 'lora' (cheaper), or 'none'"})
    stage2_learning_rate: float = field(default=5e-5, metadata={"help": "stage 2 learning rate"})
    stage2_max_steps: int = field(default=-1, metadata={"help": "steps of stage 2 (-1: stage2_epochs)"})
    stage2_epochs: float = field(default=1.0, metadata={"help": "epochs of stage 2 when stage2_max_steps is -1"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (stage2=lora)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (stage2=lora)"})
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={"help": (
        "LoRA targets; the ELM adapters are always excluded and trained fully instead")})
    keep_checkpoints: bool = field(default=False, metadata={"help": (
        "keep the stage checkpoints once the run is complete (by default they are removed: they only serve resuming "
        "a killed run, and a stage-2 checkpoint with its optimizer state is ~3x the model's size)")})
    check_rank_sync: bool = field(default=True, metadata={"help": (
        "after each stage, compare a fingerprint of every rank's weights and fail if they differ")})

    def __post_init__(self):
        if self.stage1_lm_dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"stage1_lm_dtype must be 'auto', 'bfloat16' or 'float32', got {self.stage1_lm_dtype!r}.")
        if self.stage2 not in ("full", "lora", "none"):
            raise ValueError(f"stage2 must be 'full', 'lora' or 'none', got {self.stage2!r}.")
        if self.data and self.corpus_path:  # one of the two would be ignored: training on other data than asked
            raise ValueError(f"Both a data: section and --corpus_path {self.corpus_path} were given; they name two "
                             "different corpora. Keep one: drop data: (or pass a recipe without it) to train on that "
                             "folder, or drop --corpus_path to build the corpus data: describes.")


# SFTConfig options that an ELM run sets per stage, or that have no meaning for ELM rows: given (anything but
# SFTConfig's own default), they would be ignored in silence, so they are refused with the option to use instead.
STAGE_OWNED_OPTIONS = (
    ("learning_rate", "set it per stage: --stage1_learning_rate / --stage2_learning_rate"),
    ("max_steps", "set it per stage: --stage1_max_steps / --stage2_max_steps"),
    ("num_train_epochs", "set it per stage: --stage1_epochs / --stage2_epochs"),
    ("packing", "TRL's packing would drop the vectors; --padding_free true packs the rows of a step instead"),
    ("eos_token", "ELM ends every target with the base tokenizer's eos_token; change it on the tokenizer"),
    ("pad_token", "ELM pads with the base tokenizer's pad token (its eos token when it has none)"),
    ("completion_only_loss", "ELM always trains on the target only"),
    ("assistant_only_loss", "ELM rows are prompt/target pairs, not conversations; the loss is on the target"),
    ("dataset_text_field", "ELM rows have prompt and target columns; there is no text field"),
)
ALSO_FINE = {"completion_only_loss": (True,)}  # what ELM does anyway


def refuse_ignored_options(sft_config) -> None:
    """A ValueError naming every SFTConfig option this run would otherwise ignore, with what to use instead."""
    defaults = {f.name: f.default for f in dataclasses.fields(type(sft_config))}
    wrong = []
    for name, fix in STAGE_OWNED_OPTIONS:
        value = getattr(sft_config, name)
        if value not in (defaults[name], *ALSO_FINE.get(name, ())):
            wrong.append(f"--{name} {value!r}: {fix}")
    if wrong:
        raise ValueError("These training options are not used by an ELM run:\n  " + "\n  ".join(wrong))


def check_output_dir(output_dir: str | Path, base_model: str) -> None:
    """A ValueError unless `output_dir` is new, empty, or an ELM training run (its `stage0/` or its marker), which a
    rerun resumes: training writes its model over whatever the folder holds, the base model's own files included."""
    folder = Path(output_dir).expanduser()
    fix = "Pick another --output_dir: a new or empty folder, or the output_dir of an ELM run to resume it."
    if folder.resolve() == Path(base_model).expanduser().resolve():
        raise ValueError(f"--output_dir {output_dir} is the base model's own folder (--base_model {base_model}): "
                         f"training would replace its config and weights with the ELM's. {fix}")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder. {fix}")
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if held and not ((folder / "stage0").is_dir() or (folder / STAGE_MARKER).is_file()):
        raise ValueError(f"--output_dir {output_dir} holds files that are not an ELM training run "
                         f"({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); training would overwrite them. "
                         f"{fix}")


def data_source(elm_args: ElmArguments, movielens_options=None):
    """The run's training data as one object (`data.sources`): MovieLens, your files, or a built corpus folder."""
    from ..data.sources import training_data

    if movielens_options is None:
        from ..data.movielens.build import MovieLensConfig

        movielens_options = MovieLensConfig()
    return training_data(elm_args.data, elm_args.corpus_path, movielens_options)


def check_system_prompt(elm_args: ElmArguments, source=None) -> None:
    """A ValueError if the system prompt holds a placeholder: every row's prompt would then name one vector more
    than the row has, an error only after the corpus is built, and blaming the task's prompt."""
    source = source or data_source(elm_args)
    found = [mark for mark in source.placeholders() if mark in (elm_args.system_prompt or "")]
    if found:
        raise ValueError(f"--system_prompt {elm_args.system_prompt!r} holds the placeholder {found[0]!r}, which marks "
                         f"where a vector goes in a task's prompt; the system prompt is plain text shared by every "
                         f"row. Write it without {found[0]!r} (e.g. the word {found[0].strip('<>')!r}).")


def check_prompt_lengths(elm_args: ElmArguments, source, max_length: int | None) -> None:
    """Before any corpus build or model load: the longest known prompt, chat-formatted with the system prompt and
    its placeholders expanded to `num_tokens`, must leave room for a target within `max_length`."""
    if max_length is None:
        return
    from transformers import AutoTokenizer

    source = source or data_source(elm_args)
    prompts, marks = source.prompts(), source.placeholders()
    if not prompts:
        return
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(elm_args.base_model))
    taken = [mark for mark in marks if mark in tokenizer.get_vocab()]
    if source.own_placeholders and taken:  # stage 0 would refuse it, after the corpus build: say it now
        raise ValueError(f"The placeholder {taken[0]!r} is already a token of {elm_args.base_model}'s tokenizer; set "
                         f"data.spaces.<name>.placeholder to a marker that never occurs in text, e.g. '<my_vector>'.")
    formatter = ElmProcessor(tokenizer=tokenizer, embedding_spaces={"check": {"dim": 1}},
                             system_prompt=elm_args.system_prompt or None)
    lengths = {}
    for task, prompt in prompts.items():
        for mark in marks:  # each placeholder is one special token, num_tokens times
            prompt = prompt.replace(mark, " x" * elm_args.num_tokens)
        text = formatter.prompt(prompt)
        lengths[task] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    task, longest = max(lengths.items(), key=lambda item: item[1])
    if longest >= max_length:
        raise ValueError(
            f"max_length {max_length} leaves no room for a target: the prompt of {task} alone is about "
            f"{longest} tokens (system prompt and {elm_args.num_tokens} tokens per vector included). Raise "
            f"--max_length (e.g. {longest + 128}), or shorten --system_prompt / lower --num_tokens.")
