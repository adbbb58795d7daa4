"""What the notebooks share: where the repository, the `churn` binary and the
notebooks' output directory are, and a way to run `churn`.

The binary is `$CHURN_BIN` when set (the test command sets it), else the
release build in `target/`, else `churn` on the PATH.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def binary() -> str:
    candidates = [
        os.environ.get("CHURN_BIN"),
        str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "churn"),
        shutil.which("churn"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError(
        "no churn binary: run `cargo build --release` in the repository, or set CHURN_BIN"
    )


def output_dir(notebook: str) -> Path:
    """Where a notebook writes: `$CHURN_NOTEBOOK_OUT/<notebook>`, else `churn-out/notebooks/<notebook>`."""
    base = Path(os.environ.get("CHURN_NOTEBOOK_OUT", ROOT / "churn-out" / "notebooks"))
    out = base / notebook
    out.mkdir(parents=True, exist_ok=True)
    return out


def churn(*args) -> str:
    """Runs `churn --quiet ARGS` in the repository root and returns its standard output.

    A failure raises with the command's error message, so the notebook cell fails.
    """
    command = [binary(), "--quiet", *map(str, args)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr}")
    return run.stdout


# The notebooks that also import the Python package `churn` call the CLI `cli`.
cli = churn


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def model_dir(models: Path, name: str) -> Path:
    """The newest version directory of model `name` under `models`."""
    versions = sorted(p for p in (models / name).iterdir() if p.is_dir())
    if not versions:
        raise FileNotFoundError(f"no version of {name} under {models}")
    return versions[-1]
