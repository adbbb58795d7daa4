"""Type stubs of churn's Rust extension (``churn._churn``); use the
documented wrappers in ``churn`` and ``churn.sklearn``."""

from typing import Any, Optional

import numpy as np
import numpy.typing as npt

class ChurnError(ValueError):
    """Input churn cannot use; the message names the table, row, field or argument."""

class ArrowStream:
    """A table on its way out, read once through ``__arrow_c_stream__``."""
    def __arrow_c_stream__(self, requested_schema: Optional[Any] = None) -> Any: ...

def validate(
    learners: Any,
    courses: Any,
    events: Any,
    *,
    assignments: Any = None,
    deadlines: Any = None,
    contract: Optional[str] = None,
    now: Optional[str] = None,
) -> str: ...
def features(
    learners: Any,
    courses: Any,
    events: Any,
    *,
    assignments: Any = None,
    deadlines: Any = None,
    contract: Optional[str] = None,
    now: Optional[str] = None,
    from_time: Optional[str] = None,
    to_time: Optional[str] = None,
    every: str = "14d",
    horizon: str = "30d",
    data_end: Optional[str] = None,
    label: Optional[str] = None,
    custom_types: int = 16,
    custom_event_types: Optional[list[str]] = None,
) -> tuple[ArrowStream, str]: ...
def snapshot_plan(
    first_ms: int,
    last_ms: int,
    *,
    from_time: Optional[str] = None,
    to_time: Optional[str] = None,
    every: str = "14d",
    horizon: str = "30d",
    data_end: Optional[str] = None,
) -> tuple[list[int], int]: ...
def known_event_types() -> list[str]: ...

class Model:
    feature_names: list[str]
    kind: str
    card_json: str
    path: str
    def predict(self, table: Any) -> npt.NDArray[np.float64]: ...
    def explain(
        self, table: Any
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def top_factors(self, table: Any, k: int = 3) -> list[list[tuple[str, float]]]: ...

def load_model(path_or_name: str, models_dir: str = "models") -> Model: ...

class Booster:
    valid_metric: list[float]
    best_iteration: Optional[int]
    expected_value: float
    num_trees: int
    @staticmethod
    def fit(
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        *,
        params: str,
        feature_names: list[str],
        categorical: list[int],
        sample_weight: Optional[npt.NDArray[np.float64]] = None,
        valid_x: Optional[npt.NDArray[np.float64]] = None,
        valid_y: Optional[npt.NDArray[np.float64]] = None,
        n_jobs: int = 0,
    ) -> Booster: ...
    def predict_raw(self, x: npt.NDArray[np.float64], n_jobs: int = 0) -> npt.NDArray[np.float64]: ...
    def shap_values(self, x: npt.NDArray[np.float64], n_jobs: int = 0) -> npt.NDArray[np.float64]: ...
    def importance(self) -> list[tuple[float, int]]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Booster: ...
    def to_json(self) -> str: ...
