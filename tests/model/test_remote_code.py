"""A saved checkpoint loads through the Hub's remote-code path in a process that never imported modeling_elm."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from elm_testing import assemble

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM, AutoProcessor

    path = sys.argv[1]
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    vector = torch.load(path + "/vector.pt")
    batch = processor(text="<|im_start|>user describe <movie> .<|im_end|>", vectors=vector)
    with torch.no_grad():
        logits = model(**batch).logits
        generated = model.generate(**batch, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    print(json.dumps({
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "processor_class": type(processor).__module__ + "." + type(processor).__name__,
        "imported_modeling_elm": any(m == "modeling_elm" or m.startswith("modeling_elm.") for m in sys.modules),
        "logits_sum": float(logits.double().sum()),
        "generated": generated.tolist(),
    }))
    """
)


def test_checkpoint_loads_with_trust_remote_code_in_a_fresh_process(tmp_path):
    model, processor = assemble("llama")
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_elm.ElmForCausalLM"
    assert json.loads((checkpoint / "processor_config.json").read_text())["auto_map"]["AutoProcessor"] == (
        "processing_elm.ElmProcessor"
    )
    vector = torch.randn(8)
    torch.save(vector, checkpoint / "vector.pt")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(checkpoint)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model_class"].startswith("transformers_modules.") and report["model_class"].endswith(
        "modeling_elm.ElmForCausalLM"
    )
    assert report["processor_class"].startswith("transformers_modules.")
    assert report["imported_modeling_elm"] is False

    batch = processor(text="<|im_start|>user describe <movie> .<|im_end|>", vectors=vector)
    with torch.no_grad():
        expected = model(**batch).logits
        generated = model.generate(**batch, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert abs(report["logits_sum"] - float(expected.double().sum())) < 1e-3
    assert report["generated"] == generated.tolist()
