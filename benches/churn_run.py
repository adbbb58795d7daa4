"""Running the churn binary from a benchmark: the one the test command built
(CHURN_BIN, else the release binary under CARGO_TARGET_DIR or target/)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def churn_bin() -> str:
    if "CHURN_BIN" in os.environ:
        return os.environ["CHURN_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "release" / "churn")


def run(*args: str) -> str:
    """`churn --quiet ARGS…`; exits with its error output if it fails."""
    done = subprocess.run([churn_bin(), "--quiet", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"churn {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout
