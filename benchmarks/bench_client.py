"""The serving client's memory and start time: the export's input side alone (`ElmServingClient.from_export`) against
the whole ELM built from `input/` with its LM body initialised at random (how the client loaded before).

    .venv/bin/python benchmarks/bench_client.py                        # SmolLM2-135M and a 1B-class Llama config
    .venv/bin/python benchmarks/bench_client.py --lms smollm2           # one of them

Each load runs in a fresh Python process (so one's memory cannot hide in another's), which reports the seconds from
the call to a client ready to embed a prompt and how much its resident memory grew over the imports. The 1B-class
LM (Llama 3.2 1B's shapes: 128,256 x 2,048 embeddings, 16 layers) exists only as a config: its `input/` is written
here with random weights, as an export would hold them; nothing is downloaded. Rows go to
benchmarks/results/client.jsonl with the machine; `--help` lists the options.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_matmul import machine  # noqa: E402

SPACES = {"movie": {"dim": 384, "num_tokens": 16}}
LLAMA_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, tie_word_embeddings=True)

# Run in a fresh process: load one way, then report seconds and resident-memory growth as JSON on the last line.
PROBE = r"""
import json, sys, time
import torch


def rss_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) / 1024
from modeling_elm import ElmForCausalLM
from modeling_elm.serving import ElmServingClient
from modeling_elm.serving.export import INPUT_FOLDER
export, how = sys.argv[1], sys.argv[2]
base = rss_mb()
start = time.perf_counter()
if how == "input_side":
    client = ElmServingClient.from_export(export, "http://127.0.0.1:9")
else:
    from transformers import GenerationConfig
    from modeling_elm.model.processing_elm import ElmProcessor
    folder = f"{export}/{INPUT_FOLDER}"
    model = ElmForCausalLM.from_pretrained(folder, dtype=torch.float32)
    client = ElmServingClient(model, ElmProcessor.from_pretrained(folder), "http://127.0.0.1:9",
                              generation_config=GenerationConfig.from_pretrained(folder))
client.prompt_embeddings(["What kind of movie is <movie>?"], [{"movie": [torch.zeros(384)]}])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "memory_mb": rss_mb() - base}))
"""


def smollm2_export(folder: Path) -> Path:
    from modeling_elm import ElmForCausalLM
    from modeling_elm.base_models import resolve_base_model
    from modeling_elm.serving import export_for_serving

    model, processor = ElmForCausalLM.from_language_model(resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct"),
                                                          SPACES)
    model.save_pretrained(folder / "elm")
    processor.save_pretrained(folder / "elm")
    return export_for_serving(str(folder / "elm"), folder / "export")


def llama_1b_input(folder: Path) -> Path:
    """An export's `input/` for a 1B-class Llama, written directly: its config, random embeddings and adapters, and
    SmolLM2's tokenizer (the ids a prompt uses exist in any vocabulary this size)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig

    from modeling_elm.base_models import resolve_base_model
    from modeling_elm.model.configuration_elm import ElmConfig
    from modeling_elm.model.modeling_elm import DECODING_DEFAULTS, ElmAdapter
    from modeling_elm.model.processing_elm import ElmProcessor, add_placeholder_tokens
    from modeling_elm.serving.export import INPUT_FOLDER

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct"))
    spaces = add_placeholder_tokens(tokenizer, SPACES)
    config = ElmConfig(text_config=LlamaConfig(**LLAMA_1B), embedding_spaces=spaces)
    processor = ElmProcessor(tokenizer=tokenizer, embedding_spaces=config.embedding_spaces)
    out = folder / "export" / INPUT_FOLDER
    out.mkdir(parents=True)
    config.save_pretrained(out)
    processor.save_pretrained(out)
    GenerationConfig(**DECODING_DEFAULTS).save_pretrained(out)
    generator = torch.Generator().manual_seed(0)
    state = {"model.language_model.embed_tokens.weight":
             torch.randn(LLAMA_1B["vocab_size"], LLAMA_1B["hidden_size"], generator=generator) * 0.02}
    adapter = ElmAdapter(config.embedding_spaces["movie"], LLAMA_1B["hidden_size"], config.adapter_rms_norm_eps)
    state |= {f"model.adapters.movie.{k}": v.contiguous() for k, v in adapter.state_dict().items()}
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    return folder / "export"


def measure(export: Path, how: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(export), how], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{how} on {export} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def held_bytes(export: Path) -> int:
    """The embedding table and the adapters as stored: what the client has to hold."""
    return sum(path.stat().st_size for path in (export / "input").glob("*.safetensors"))


def main(argv=None) -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_client", prog="benchmarks/bench_client.py")
    parser.add_argument("--lms", nargs="+", default=["smollm2", "llama-1b"], choices=["smollm2", "llama-1b"])
    parser.add_argument("--ways", nargs="+", default=["input_side", "whole_elm"], choices=["input_side", "whole_elm"],
                        help="input_side: from_export as it is; whole_elm: the ELM from input/, LM body at random")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "client.jsonl")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lm in args.lms:
            folder = Path(tmp) / lm
            export = smollm2_export(folder) if lm == "smollm2" else llama_1b_input(folder)
            stored_mb = held_bytes(export) / 2**20
            for how in args.ways:
                row = {"lm": lm, "way": how, "input_side_mb": round(stored_mb, 1), **measure(export, how),
                       "machine": machine()}
                row["memory_ratio"] = round(row["memory_mb"] / stored_mb, 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    print("\n| LM | client | start s | memory held MB | stored input side MB | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['lm']} | {r['way']} | {r['seconds']:.2f} | {r['memory_mb']:.0f} | {r['input_side_mb']:.0f} "
              f"| {r['memory_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
