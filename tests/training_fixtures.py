"""On-disk inputs for training tests: a tiny random base LM folder and a tiny corpus, both built offline."""

from pathlib import Path

from conftest import build_language_model, build_tokenizer
from movielens_fixtures import write_ml25m_folder


def write_tiny_base_model(folder: Path, family: str = "llama") -> Path:
    tokenizer = build_tokenizer()
    build_language_model(family, len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_corpus(folder: Path, tasks=("summary", "similarities", "user_profile")) -> Path:
    from modeling_elm.corpus import CorpusConfig, build_corpus

    release = folder / "ml-25m"
    release.mkdir(parents=True, exist_ok=True)
    write_ml25m_folder(release, n_users=80, n_movies=40, seed=3)
    return build_corpus(CorpusConfig(
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
