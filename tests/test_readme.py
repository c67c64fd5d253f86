"""The README's quick-start snippet runs as written (against the offline default base model); the results page a
newcomer opens next shows the default model first and links only what exists."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    assert (tmp_path / "my-elm" / "model.safetensors").is_file()
    assert (tmp_path / "my-elm" / "modeling_elm.py").is_file()
    assert capsys.readouterr().out.strip()


def test_the_results_page_opens_with_the_default_models_held_out_figures_and_links_what_exists():
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "results.md").read_text()
    lines = page.splitlines()
    assert len(lines) <= 200  # one screen on top, one short section per recipe; the history is in docs/experiments/
    first = "\n".join(lines[:40])
    assert "| genre F1 |" in first and "another movie's vector" in first and "constant" in first
    links = re.findall(r"\]\(([^)#]+)\)", page)
    assert links and all((root / "docs" / link).exists() for link in links), links
    pages = sorted((root / "docs" / "experiments").glob("*.md"))
    assert pages and all(f"experiments/{p.name}" in page for p in pages)  # every dated page linked
    assert all(re.match(r"\d{4}-\d{2}-\d{2}-", p.name) for p in pages)
    for p in pages:  # their figures resolve from their own folder
        assert all((p.parent / link).exists() for link in re.findall(r"\]\(([^)#]+\.png)\)", p.read_text()))
