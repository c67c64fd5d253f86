"""The Hub's remote-code path: a saved checkpoint's auto_map names the config, the backbone and the causal LM, and
the checkpoint loads with trust_remote_code in a process that never imported modeling_elm; on a transformers too old
for the travelling files, importing them says which version to install instead of failing on a missing name."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from helpers.elm import ROOT, assemble

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


def test_auto_map_names_the_backbone_too(tmp_path):
    model, _ = assemble("llama")
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_elm.ElmConfig", "AutoModel": "modeling_elm.ElmModel",
                        "AutoModelForCausalLM": "modeling_elm.ElmForCausalLM"}


def test_the_remote_processor_on_an_older_transformers_names_the_version_to_install(tmp_path):
    import shutil

    package = tmp_path / "remote_elm"  # the three travelling files, flat, as a Hub repo holds them
    package.mkdir()
    for name in ("configuration_elm.py", "modeling_elm.py", "processing_elm.py"):
        shutil.copy(ROOT / "modeling_elm" / "model" / name, package / name)
    (package / "__init__.py").write_text("")
    script = textwrap.dedent("""
        import transformers.configuration_utils as cu
        del cu.SubConfigSpec  # what transformers 4.57 / 5.0 lack
        try:
            import remote_elm.processing_elm
        except ImportError as error:
            print(error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "needs transformers >= 5.24.0" in out.stdout, out.stderr[-800:]


def test_remote_code_on_an_older_transformers_names_the_version_to_install(tmp_path):
    # What transformers 5.0 / 4.57 lack: the composite-config spec. Simulated in a fresh process.
    configuration = ROOT / "modeling_elm" / "model" / "configuration_elm.py"
    script = textwrap.dedent(f"""
        import importlib.util, transformers.configuration_utils as cu
        del cu.SubConfigSpec
        spec = importlib.util.spec_from_file_location("configuration_elm", {str(configuration)!r})
        try:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        except ImportError as error:
            print(error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    assert "needs transformers >= 5.24.0" in out and "pip install -U 'transformers>=5.24.0'" in out
