"""churn: predict which learners are about to leave, and say why.

The same Rust code as the ``churn`` command line and server, from Python:

- :func:`features` computes the training table of ``churn features`` (features
  and labels at rolling as-of times) from learners, courses and events tables;
- :func:`validate` checks tables against the data contract and accounts for
  every row;
- :func:`load_model` opens a trained model (``churn train``'s output) that
  predicts, explains (exact TreeSHAP or logistic terms) and names top factors;
- :class:`GBDTClassifier` is a scikit-learn estimator around churn's
  gradient-boosted trees (``churn.sklearn``);
- :mod:`churn.spark` runs the features and the scoring in Spark's workers.

Tables go in as pyarrow tables, polars or pandas data frames (anything with
``__arrow_c_stream__``; pandas is converted through pyarrow) and come out as
pyarrow tables. Heavy work runs with the GIL released.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import os as _os
import warnings as _warnings
from typing import Any, Optional, Union

import pyarrow as _pa

from churn import _churn
from churn._churn import ChurnError

__all__ = [
    "ChurnError",
    "GBDTClassifier",
    "Model",
    "RejectedRowsWarning",
    "features",
    "load_model",
    "validate",
]

Time = Union[str, _dt.datetime, _dt.date]


class RejectedRowsWarning(UserWarning):
    """Rows broke the data contract and were left out (see :func:`validate`)."""


def _arrow(table: Any, name: str) -> Any:
    """A table as something with ``__arrow_c_stream__``."""
    if table is None or hasattr(table, "__arrow_c_stream__"):
        return table
    module = type(table).__module__
    if module.startswith("pandas"):
        return _pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(
        f"{name}: expected a pyarrow Table, a polars or pandas DataFrame, got {type(table).__name__}"
    )


def _time(value: Optional[Time], name: str) -> Optional[str]:
    """A time argument as the contract's text (UTC)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise TypeError(f"{name}: expected a str, datetime or date, got {type(value).__name__}")


def _contract(contract: Union[None, str, "_os.PathLike[str]"]) -> Optional[str]:
    """``contract.toml``'s text: from a path, or the text itself."""
    if contract is None:
        return None
    text = _os.fspath(contract)
    if "\n" not in text and "=" not in text and _os.path.exists(text):
        with open(text, encoding="utf-8") as f:
            return f.read()
    return text


def _tables(learners: Any, courses: Any, events: Any, assignments: Any, deadlines: Any):
    return dict(
        learners=_arrow(learners, "learners"),
        courses=_arrow(courses, "courses"),
        events=_arrow(events, "events"),
        assignments=_arrow(assignments, "assignments"),
        deadlines=_arrow(deadlines, "deadlines"),
    )


def _account(report: dict, strict: bool) -> None:
    rejected = report["total_rejected"]
    if rejected == 0:
        return
    lines = []
    for table in report["tables"]:
        if table["rejected"]:
            first = table["rejects"][0]
            lines.append(
                f"{table['table']}: {table['rejected']} of {table['read']} rows "
                f"(first: row {first['row']}, {first['field']}: {first['reason']})"
            )
    message = f"{rejected} rows rejected by the data contract; " + "; ".join(lines)
    if strict:
        raise ChurnError(message)
    _warnings.warn(message, RejectedRowsWarning, stacklevel=3)


def validate(
    learners: Any,
    courses: Any,
    events: Any,
    *,
    assignments: Any = None,
    deadlines: Any = None,
    contract: Union[None, str, "_os.PathLike[str]"] = None,
    now: Optional[Time] = None,
) -> dict:
    """Checks tables against the data contract, as ``churn validate`` does.

    Returns ``{"tables": [...], "total_rejected": n}``; per table the rows
    read, accepted and rejected, and each rejected row's 1-based ``row``,
    ``field`` and ``reason``. ``read = accepted + rejected`` always.
    """
    text = _churn.validate(
        **_tables(learners, courses, events, assignments, deadlines),
        contract=_contract(contract),
        now=_time(now, "now"),
    )
    return _json.loads(text)


def features(
    learners: Any,
    courses: Any,
    events: Any,
    *,
    as_of: Optional[Time] = None,
    horizon: str = "30d",
    every: str = "14d",
    from_time: Optional[Time] = None,
    to_time: Optional[Time] = None,
    data_end: Optional[Time] = None,
    label: Optional[str] = None,
    assignments: Any = None,
    deadlines: Any = None,
    contract: Union[None, str, "_os.PathLike[str]"] = None,
    now: Optional[Time] = None,
    custom_types: int = 16,
    custom_event_types: Optional[list] = None,
    strict: bool = False,
) -> _pa.Table:
    """The training table of ``churn features``, equal to the CLI's.

    One row per (learner, as-of time): ``learner_id``, ``as_of``,
    ``churned`` (null when the horizon runs past the data) and the features.
    ``as_of`` asks for one as-of time; otherwise as-of times run every
    ``every`` from ``from_time`` to ``to_time`` (defaults as the CLI's).
    Custom event types get features for the ``custom_types`` most frequent
    ones, or exactly ``custom_event_types`` when given (what a cluster fixes
    once, so that every part of the data has the same columns). Rows that
    break the contract are left out with a :class:`RejectedRowsWarning` (an
    error with ``strict=True``).
    """
    if as_of is not None:
        if from_time is not None or to_time is not None:
            raise ValueError("as_of is one as-of time: leave from_time and to_time out")
        from_time = to_time = as_of
    stream, report = _churn.features(
        **_tables(learners, courses, events, assignments, deadlines),
        contract=_contract(contract),
        now=_time(now, "now"),
        from_time=_time(from_time, "from_time"),
        to_time=_time(to_time, "to_time"),
        every=every,
        horizon=horizon,
        data_end=_time(data_end, "data_end"),
        label=label,
        custom_types=custom_types,
        custom_event_types=custom_event_types,
    )
    _account(_json.loads(report), strict)
    return _pa.table(stream)


class Model:
    """A trained churn model (see :func:`load_model`)."""

    def __init__(self, inner: "_churn.Model") -> None:
        self._inner = inner

    @property
    def feature_names(self) -> list:
        """The features the model reads, in order."""
        return self._inner.feature_names

    @property
    def kind(self) -> str:
        """``gbdt`` or ``logistic``."""
        return self._inner.kind

    @property
    def card(self) -> dict:
        """The model card (``model.json``): version, training data, metrics."""
        return _json.loads(self._inner.card_json)

    @property
    def path(self) -> str:
        """The directory the model was loaded from."""
        return self._inner.path

    def predict(self, table: Any):
        """Calibrated churn probabilities (numpy), one per row of a feature table."""
        return self._inner.predict(_arrow(table, "table"))

    def explain(self, table: Any):
        """``(base_values, contributions)`` (numpy): per row the base value and
        each feature's log-odds contribution, in :attr:`feature_names` order;
        base + row sum = the margin before calibration."""
        return self._inner.explain(_arrow(table, "table"))

    def top_factors(self, table: Any, k: int = 3) -> list:
        """Per row, the ``k`` features that raise the risk most, as
        ``(feature, contribution)`` pairs, largest first."""
        return self._inner.top_factors(_arrow(table, "table"), k)

    def __repr__(self) -> str:
        return f"churn.Model({self.kind}, {len(self.feature_names)} features, {self.path!r})"


def load_model(path_or_name: Union[str, "_os.PathLike[str]"], models_dir: str = "models") -> Model:
    """Opens a model: a directory with ``model.json`` and ``model.bin``
    (checked against its checksum), or a name in ``models_dir`` such as
    ``churn-gbdt``, ``churn-gbdt@3`` or ``production``."""
    return Model(_churn.load_model(_os.fspath(path_or_name), models_dir=_os.fspath(models_dir)))


def __getattr__(name: str) -> Any:
    # scikit-learn is optional: import the estimator only when it is asked for.
    if name == "GBDTClassifier":
        from churn.sklearn import GBDTClassifier

        return GBDTClassifier
    raise AttributeError(f"module 'churn' has no attribute {name!r}")
