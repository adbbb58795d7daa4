"""The package's tests run the CLI for reference values (tests/python/churn_cli.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
