"""Helpers every test module shares (fixtures are in conftest.py): tiny random causal LMs of several families, a
word-level tokenizer, a tiny ELM, a tiny base-model folder and corpus for train.py, and entity facts for the writers.
All built offline."""

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

from modeling_elm.data.movielens.writers.grounded import MovieFacts, UserFacts
from helpers.movielens import write_ml25m_folder

ROOT = Path(__file__).resolve().parents[2]
WORDS = (
    "the a an of and to in is it that for on with as this movie film user about story love war space funny sad "
    "scary drama comedy action thriller horror romance crime family music old new good bad great best worst like "
    "likes liked watch watched describe summarize review what does mean vector who why how one two three year "
    "years genre genres fan fans people many few very more less than his her their is are was were be".split()
)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)
FAMILIES = ["llama", "llama-untied", "qwen2", "gpt2"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(WORDS)) + list(".,!?"))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_language_model(family: str, vocab_size: int, seed: int = 0, head_dim: int = 8):
    """A tiny random LM of `family` with 4 attention heads of `head_dim` (vLLM's CPU attention needs >= 32)."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    hidden = 4 * head_dim
    if family in ("llama", "llama-untied"):
        config = LlamaConfig(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, tie_word_embeddings=family == "llama", **common,
        )
    elif family == "qwen2":
        config = Qwen2Config(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, tie_word_embeddings=False, **common,
        )
    elif family == "gpt2":
        config = GPT2Config(n_embd=hidden, n_layer=2, n_head=4, n_positions=128, tie_word_embeddings=True, **common)
    elif family in ("gemma2", "gemma3"):  # Gemma scales embeddings (inside the module for 3, in the forward for 2)
        from transformers import Gemma2Config, Gemma3TextConfig

        kind = Gemma2Config if family == "gemma2" else Gemma3TextConfig
        config = kind(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=head_dim, **common)
    else:
        raise ValueError(family)
    return AutoModelForCausalLM.from_config(config).eval()


def assemble(family: str = "llama", spaces=None, seed: int = 0):
    """A tiny ELM around a random LM: (model, processor)."""
    from modeling_elm import ElmForCausalLM

    tokenizer = build_tokenizer()
    lm = build_language_model(family, len(tokenizer), seed=seed)
    spaces = spaces or {"movie": {"dim": 8}}
    model, processor = ElmForCausalLM.from_language_model(lm, spaces, tokenizer=tokenizer)
    torch.manual_seed(seed + 1)
    # A random adapter on a random LM: give it weights large enough that the vector visibly changes the output.
    for adapter in model.model.adapters.values():
        torch.nn.init.normal_(adapter.fc1.weight, std=0.5)
        torch.nn.init.normal_(adapter.fc2.weight, std=0.5)
    return model.eval(), processor

def sharpen(lm, family: str, seed: int = 2):
    """transformers' init (std 0.02) makes a tiny LM say one token forever, and Gemma's embedding scale (x sqrt(hidden))
    saturates its softcapped logits at 0.3: weights at which answers vary and the next token is clear, so that two
    engines' rounding cannot flip a greedy choice."""
    torch.manual_seed(seed)
    std = 0.1 if family.startswith("gemma") else 0.3
    with torch.no_grad():
        for parameter in lm.parameters():
            if parameter.dim() == 2:
                parameter.normal_(std=std)
    return lm


def write_tiny_base_model(folder: Path, family: str = "llama", head_dim: int = 8, sharp: bool = False) -> Path:
    """A tiny base-model folder for train.py; `head_dim` 32 and `sharp` weights for one a vLLM server runs."""
    tokenizer = build_tokenizer()
    lm = build_language_model(family, len(tokenizer), head_dim=head_dim)
    (sharpen(lm, family) if sharp else lm).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_corpus(folder: Path, tasks=("summary", "similarities", "user_profile")) -> Path:
    from modeling_elm.data.movielens.build import MovieLensConfig, build_corpus

    release = folder / "ml-25m"
    release.mkdir(parents=True, exist_ok=True)
    write_ml25m_folder(release, n_users=80, n_movies=40, seed=3)
    return build_corpus(MovieLensConfig(
        source=str(release), min_movie_ratings=3, min_user_ratings=3, test_fraction=0.2, als_dim=8,
        als_iterations=3, evaluate_embeddings=False, tasks=list(tasks), detail="brief",
        corpus_dir=str(folder / "corpus")))


def tiny_train_args(base_model: Path, corpus: Path, output_dir: Path, **overrides) -> list[str]:
    """Command-line arguments for train.py on the tiny model and corpus: a few steps per stage."""
    settings = dict(
        base_model=base_model, corpus_path=corpus, output_dir=output_dir, use_cpu="true", bf16="false",
        per_device_train_batch_size=4, stage1_max_steps=4, stage2_max_steps=3, stage1_learning_rate=1e-2,
        stage2_learning_rate=1e-3, logging_steps=1, save_steps=2, report_to="none", gradient_checkpointing="false",
        max_length=64, seed=0, dataloader_num_workers=0, check_rank_sync="true", disable_tqdm="true",
    )
    settings.update(overrides)
    return [item for key, value in settings.items() for item in (f"--{key}", str(value))]


def run_train(args: list[str]) -> Path:
    """train.py's main, in this process; returns the output folder."""
    from modeling_elm.scripts import train

    train.main(args)
    return Path(args[args.index("--output_dir") + 1])


# Entities as the target writers see them
HEAT = MovieFacts("6", "Heat", 1995, ["Action", "Crime", "Thriller"], tags=["heist", "al pacino"], mean_rating=3.9,
                  n_ratings=104, popularity=0.97, fan_genre="Crime", neighbours=["Ronin", "Collateral"])
TOY_STORY = MovieFacts("1", "Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
                       mean_rating=3.9, n_ratings=247, popularity=0.99, neighbours=["Toy Story 2"])
OBSCURE = MovieFacts("9", "The War Within", None, [], mean_rating=2.5, n_ratings=3, popularity=0.1)
USER = UserFacts("7", 120, 4.2, ["Horror", "Sci-Fi"], "Romance", ["1980s"], ["Alien", "The Thing"], "generous")
