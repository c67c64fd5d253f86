"""Training cost: ELM stage 2 against plain TRL SFT of the same base LM on the same token batches, stage 1 against
stage 2, and how much of a group-by-length batch is padding.

    .venv/bin/python benchmarks/bench_training.py                    # SmolLM2-135M-Instruct, the quick recipe's rows
    .venv/bin/python benchmarks/bench_training.py --steps 4 --repeats 1   # smoke run

Both sides are SFTTrainer runs over identical batches (the quick recipe's tokenised rows in a fixed order, the same
collator); for the bare LM each placeholder token is replaced by an ordinary token and no vectors are passed, so
the difference is exactly the ELM's: the adapter and the injection. Runs interleave (ELM, plain, ELM, plain, ...)
so machine drift hits both; the first steps of every run are warm-up and not counted. On a GPU the script also
reports tokens/s and model FLOPs utilisation (6 x parameters x tokens / step time / peak FLOPs of the card).
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformers import AutoModelForCausalLM, TrainerCallback  # noqa: E402
from trl import SFTConfig  # noqa: E402

from modeling_elm.base_models import resolve_base_model  # noqa: E402
from modeling_elm.corpus import CorpusConfig, build_corpus, load_corpus  # noqa: E402
from modeling_elm.stages import DEFAULT_SYSTEM_PROMPT, stage_trainable  # noqa: E402
from modeling_elm.modeling_elm import ElmForCausalLM  # noqa: E402
from modeling_elm.training import ElmDataCollator, ElmSFTTrainer, tokenize_rows  # noqa: E402

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def timed_run(model, tokenizer, dataset, collator, steps, lr, cpu, strategy="sequential", out="/tmp/elm-bench-train"):
    args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=16, learning_rate=lr,
                     use_cpu=cpu, bf16=not cpu, report_to="none", save_strategy="no", logging_steps=10_000,
                     gradient_checkpointing=False, remove_unused_columns=False, disable_tqdm=True,
                     dataset_kwargs={"skip_prepare_dataset": True}, train_sampling_strategy=strategy, seed=0)
    timer = StepTimer()
    trainer = ElmSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            data_collator=collator, callbacks=[timer])
    trainer.train()
    return timer.times[2:]  # the first steps allocate and warm caches


def padding_fraction(dataset, collator, batch_size=16, seed=0):
    """Share of padded positions over an epoch of group-by-length batches, as the Trainer's sampler draws them."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    sampler = LengthGroupedSampler(batch_size, lengths=dataset["length"], generator=torch.Generator().manual_seed(seed))
    order = list(sampler)
    padded = real = 0
    for i in range(0, len(order), batch_size):
        mask = collator([dataset[j] for j in order[i: i + batch_size]])["attention_mask"]
        padded += int((mask == 0).sum())
        real += int(mask.sum())
    random_padded = random_real = 0
    shuffled = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    for i in range(0, len(shuffled), batch_size):
        mask = collator([dataset[j] for j in shuffled[i: i + batch_size]])["attention_mask"]
        random_padded += int((mask == 0).sum())
        random_real += int(mask.sum())
    return padded / (padded + real), random_padded / (random_padded + random_real)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--steps", type=int, default=8, help="steps per run (the first 2 are warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per side")
    args = parser.parse_args()
    cpu = not torch.cuda.is_available()

    corpus = load_corpus(build_corpus(CorpusConfig(tasks=["summary", "movie_to_viewer"], detail="brief",
                                                   evaluate_embeddings=False)))
    base = resolve_base_model(args.base_model)
    elm, processor = ElmForCausalLM.from_language_model(base, corpus.spaces, dtype=torch.float32)
    tokenizer = processor.tokenizer
    rows = tokenize_rows(corpus.tasks["train"], processor, ["movie"], DEFAULT_SYSTEM_PROMPT, 96)
    collator = ElmDataCollator(tokenizer.pad_token_id, ("movie",))
    placeholder = elm.config.embedding_spaces["movie"]["placeholder_token_id"]
    ordinary = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(" movie"))[0]
    plain_rows = rows.map(lambda r: {"input_ids": [ordinary if t == placeholder else t for t in r["input_ids"]]})
    plain_rows = plain_rows.remove_columns(["movie_vectors"])
    plain_collator = ElmDataCollator(tokenizer.pad_token_id, ())
    plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    plain.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # same vocabulary, same LM-head cost

    results = {"elm_stage2": [], "plain_sft": [], "elm_stage1": []}
    for _ in range(args.repeats):
        for name, p in elm.named_parameters():
            p.requires_grad_(stage_trainable(2, "full")(name))
        results["elm_stage2"] += timed_run(elm, tokenizer, rows, collator, args.steps, 1e-6, cpu)
        results["plain_sft"] += timed_run(plain, tokenizer, plain_rows, plain_collator, args.steps, 1e-6, cpu)
        for name, p in elm.named_parameters():
            p.requires_grad_(stage_trainable(1, "full")(name))
        results["elm_stage1"] += timed_run(elm, tokenizer, rows, collator, args.steps, 1e-6, cpu)
    median = {k: statistics.median(v) for k, v in results.items()}
    batch_tokens = sum(int(collator([rows[i] for i in range(j * 16, j * 16 + 16)])["attention_mask"].numel())
                       for j in range(2, args.steps)) / (args.steps - 2)
    grouped, shuffled = padding_fraction(rows, collator)
    report = {
        "machine": torch.cuda.get_device_name() if not cpu else f"{platform.machine()}, CPU, {torch.get_num_threads()} threads",
        "command": "benchmarks/bench_training.py " + " ".join(sys.argv[1:]),
        "median_step_s": {k: round(v, 3) for k, v in median.items()},
        "throughput_ratio_elm_stage2_over_plain": round(median["plain_sft"] / median["elm_stage2"], 3),
        "stage1_step_over_stage2_step": round(median["elm_stage1"] / median["elm_stage2"], 3),
        "padding_fraction_group_by_length": round(grouped, 4),
        "padding_fraction_random_batches": round(shuffled, 4),
        "stage2_tokens_per_s": round(batch_tokens / median["elm_stage2"]),
    }
    if not cpu:
        params = sum(p.numel() for p in elm.parameters())
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in torch.cuda.get_device_name()), None)
        if peak:
            report["stage2_mfu"] = round(6 * params * batch_tokens / median["elm_stage2"] / peak, 4)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
