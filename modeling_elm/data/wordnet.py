"""WordNet 3.0 as a second ELM domain, built from files on disk like any user's data.

    python -m modeling_elm.scripts.wordnet --output data/wordnet     # then: train.py --config recipes/wordnet.yaml

Entities are noun synsets; a synset's vector is the MiniLM embedding of its lemma names ("dog, domestic dog, Canis
familiaris"), so the trained ELM describes *any* MiniLM vector: a word it never saw, the mean of a cluster,
king - man + woman. Targets: the gloss (definition), the hypernym ("a kind of ..."), an example of use. Reads
Debian's `wordnet-base` files (/usr/share/wordnet; WordNet licence, permissive) and writes
`synsets.parquet` (id, lemmas, vector, gloss, hypernym, example) and `texts.jsonl` (ids, task, target): the two
inputs the bring-your-own-data recipe takes.
"""

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)
WORDNET_DIRS = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/share/wordnet-3.0/dict")


@dataclass
class Synset:
    offset: str
    lemmas: list[str]
    hypernyms: list[str]
    definition: str
    examples: list[str]


def find_wordnet(folder: str | None = None) -> Path:
    for candidate in ([folder] if folder else WORDNET_DIRS):
        if candidate and (Path(candidate) / "data.noun").is_file():
            return Path(candidate)
    raise FileNotFoundError("WordNet's data.noun was not found in " + ", ".join(WORDNET_DIRS) +
                            ". Install it with `apt-get install wordnet-base` (scripts/setup.sh does) "
                            "or pass --wordnet.")


def parse_data_line(line: str, path: Path, number: int) -> Synset:
    """One line of a WordNet `data.*` file (see wndb(5)); errors name the file and line."""
    try:
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
        lemmas = [re.sub(r"\((a|p|ip)\)$", "", lemma) for lemma in lemmas]  # adjective markers
        at = 4 + 2 * count
        pointers = int(fields[at])
        hypernyms = [fields[at + 1 + 4 * i + 1] for i in range(pointers) if fields[at + 1 + 4 * i] in ("@", "@i")]
    except (IndexError, ValueError) as error:
        raise ValueError(f"{path}:{number}: not a WordNet data line ({error}): {line[:80]!r}") from None
    parts = [p.strip() for p in gloss.strip().split(";")]
    examples = [p.strip('"') for p in parts if p.startswith('"')]
    definition = "; ".join(p for p in parts if p and not p.startswith('"'))
    return Synset(fields[0], lemmas, hypernyms, definition, examples)


def read_nouns(folder: Path) -> dict[str, Synset]:
    path = folder / "data.noun"
    synsets = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("  "):  # the licence header
                continue
            synset = parse_data_line(line.rstrip("\n"), path, number)
            synsets[synset.offset] = synset
    return synsets


def build_wordnet(output: Path, max_synsets: int = 12000, seed: int = 0, wordnet: str | None = None,
                  encoder: str | None = None) -> Path:
    """Write synsets.parquet and texts.jsonl for a seeded sample of noun synsets that have a hypernym."""
    from .embeddings import load_encoder, semantic_embeddings

    synsets = read_nouns(find_wordnet(wordnet))
    usable = sorted(o for o, s in synsets.items() if s.hypernyms and s.definition)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(usable, size=min(max_synsets, len(usable)), replace=False).tolist())
    rows = []
    for offset in chosen:
        s = synsets[offset]
        hypernym = synsets[s.hypernyms[0]].lemmas[0] if s.hypernyms[0] in synsets else ""
        rows.append({"id": f"n{offset}", "lemmas": ", ".join(s.lemmas), "word": s.lemmas[0], "gloss": s.definition,
                     "hypernym": hypernym, "example": s.examples[0] if s.examples else ""})
    table = pd.DataFrame(rows)
    logger.info("Embedding %d synsets' lemma names with the sentence encoder", len(table))
    table["vector"] = list(semantic_embeddings(table["lemmas"].tolist(), load_encoder(encoder)))
    output.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output / "synsets.parquet", index=False)
    with (output / "texts.jsonl").open("w") as handle:
        for row in rows:
            texts = {"definition": row["gloss"][0].upper() + row["gloss"][1:] + ".",
                     "kind_of": f"A kind of {row['hypernym']}." if row["hypernym"] else "",
                     "example": row["example"][0].upper() + row["example"][1:] + "." if row["example"] else ""}
            for task, target in texts.items():
                if target:
                    handle.write(json.dumps({"ids": [row["id"]], "task": task, "target": target}) + "\n")
    (output / "README.md").write_text(
        "WordNet 3.0 noun synsets (Princeton University; WordNet licence) with MiniLM vectors of their lemma names,\n"
        "built by `python -m modeling_elm.scripts.wordnet`.\n")
    return output
