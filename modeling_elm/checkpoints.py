"""What a checkpoint folder holds besides its weights: `elm_stage.json`, the marker training writes last.

It says how far a run got (stage, steps, whether it is complete) and what it was trained on (the corpus, the system
prompt), so a killed run resumes in the right stage and evaluation finds the corpus without being told.
"""

import json
from pathlib import Path

STAGE_MARKER = "elm_stage.json"  # written last into a folder, so a folder without it is an interrupted save


def write_marker(folder: str | Path, **fields) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STAGE_MARKER + ".tmp")
    tmp.write_text(json.dumps(fields, indent=2))
    tmp.replace(folder / STAGE_MARKER)


def read_marker(folder: str | Path) -> dict | None:
    path = Path(folder) / STAGE_MARKER
    return json.loads(path.read_text()) if path.is_file() else None
