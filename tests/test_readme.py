"""The README's quick-start snippet runs as written (against the offline default base model)."""

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
