"""Running the `churn` binary from the Python tests."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def churn(*args, capture=False):
    """Runs `churn --quiet ARGS` in the repository root; returns stdout when `capture`.

    scripts/test.sh points CHURN_BIN at the binary `cargo test` built; `cargo run`
    would resolve features for the root package alone and rebuild polars.
    """
    binary = os.environ.get("CHURN_BIN")
    command = [binary] if binary else ["cargo", "run", "--release", "--quiet", "--"]
    result = subprocess.run(
        [*command, "--quiet", *args], cwd=ROOT, check=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
    )
    return result.stdout
