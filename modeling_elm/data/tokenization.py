"""Corpus rows -> model inputs: token ids with the loss on the target only, and per placeholder the vector-table rows
that fill it. Training (the collator), evaluation (reference NLL) and the benchmarks tokenise through here."""

import torch


def tokenize_rows(dataset, processor, vector_tables: dict, max_length: int | None, num_proc: int | None = None):
    """Corpus rows -> `input_ids`, `prompt_length`, `length` and, per space of `vector_tables` ({space: VectorTable}),
    `<space>_slot_index`: for each placeholder, the table rows whose mean vector fills it.

    Prompts are chat-formatted by the processor (`processor.prompt`: its system prompt, the LM's template), as
    every caller formats them. Targets end with the tokenizer's end-of-turn token so the model learns to stop. When
    a row is longer than `max_length`, the target is cut, never the prompt: a cut prompt could lose a placeholder,
    and the vector would then have nowhere to go. A prompt that alone exceeds `max_length`, an id missing from its
    vector table, or placeholders that do not match the row's slots are errors naming the row. Checked here, on the
    host, once: the forward pass then never has to.
    """
    tokenizer = processor.tokenizer
    end = tokenizer.eos_token or ""
    placeholders = {name: (processor.embedding_spaces[name]["placeholder_token_id"],
                           processor.embedding_spaces[name]["num_tokens"]) for name in vector_tables}

    def encode(batch, indices):
        prompts = [processor.expand_placeholders(processor.prompt(p)) for p in batch["prompt"]]
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer([t + end for t in batch["target"]], add_special_tokens=False)["input_ids"]
        input_ids, prompt_lengths = [], []
        slot_index = {name: [] for name in vector_tables}
        row_slots = {name: batch.get(f"{name}_slots") or [[]] * len(indices) for name in vector_tables}
        for j, (index, task, prompt, target) in enumerate(zip(indices, batch["task"], prompt_ids, target_ids)):
            where = f"Row {index} (task {task!r})"
            if max_length is not None and len(prompt) >= max_length:
                raise ValueError(
                    f"{where}: the prompt alone is {len(prompt)} tokens, max_length is {max_length}. "
                    "Raise max_length or shorten the prompt / system prompt; ELM never cuts a prompt, since that "
                    "could drop a placeholder.")
            for name, table in vector_tables.items():
                slots = row_slots[name][j] or []
                token_id, num_tokens = placeholders[name]
                if prompt.count(token_id) != len(slots) * num_tokens:
                    raise ValueError(
                        f"{where}: the prompt has {prompt.count(token_id) // num_tokens} placeholder(s) of "
                        f"space {name!r} but the row names {len(slots)} slot(s): {batch['prompt'][j]!r}")
                try:
                    slot_index[name].append([table.rows(slot).tolist() for slot in slots])
                except KeyError as error:
                    raise ValueError(f"{where}: {error.args[0]}; the corpus' rows and vectors/ disagree, rebuild "
                                     "it.") from None
            if max_length is not None:
                target = target[: max_length - len(prompt)]
            input_ids.append(prompt + target)
            prompt_lengths.append(len(prompt))
        return {"input_ids": input_ids, "prompt_length": prompt_lengths, "length": [len(i) for i in input_ids],
                **{f"{name}_slot_index": index for name, index in slot_index.items()}}

    from datasets import Features, List, Value

    # Declared, not inferred: a batch whose rows use no vector of a space would otherwise type that column `null`
    # and clash with the next batch's integer lists.
    features = Features({"input_ids": List(Value("int32")), "prompt_length": Value("int32"), "length": Value("int32"),
                         **{f"{name}_slot_index": List(List(Value("int64"))) for name in vector_tables}})
    return dataset.map(encode, batched=True, with_indices=True, num_proc=num_proc, desc="Tokenizing",
                       remove_columns=dataset.column_names, features=features)


def gather_slots(table: torch.Tensor, slots: list[list[int]]) -> torch.Tensor:
    """(len(slots), dim): per slot, the mean of its rows of `table`."""
    sizes = torch.tensor([len(slot) for slot in slots])
    gathered = table[torch.tensor([i for slot in slots for i in slot], dtype=torch.long)]
    if bool((sizes == 1).all()):
        return gathered
    owner = torch.repeat_interleave(torch.arange(len(slots)), sizes)
    return torch.zeros(len(slots), table.shape[1]).index_add_(0, owner, gathered) / sizes[:, None]


def batch_vectors(rows: list[dict], vectors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{space: (placeholders in the batch, dim)}: the vectors of tokenised `rows`, in row and placeholder order (the
    order the model meets the placeholders, padded or packed); spaces no row uses are left out."""
    gathered = {}
    for name, table in vectors.items():
        slots = [slot for row in rows for slot in (row.get(f"{name}_slot_index") or [])]
        if slots:
            gathered[name] = gather_slots(table, slots)
    return gathered
