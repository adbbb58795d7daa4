"""``GBDTClassifier``: churn's gradient-boosted trees as a scikit-learn estimator.

Parameters carry LightGBM's scikit-learn names and defaults, so that code
written for ``lightgbm.LGBMClassifier`` reads the same. Training is churn-gbdt
(Rust), with the GIL released; for a given ``random_state`` the model is the
same whatever ``n_jobs`` is.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence, Union

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from churn import _churn


def _codes(X: Any, categories: Optional[dict]) -> tuple[Any, Optional[dict]]:
    """pandas ``category`` columns as their codes (NaN when missing or unseen).

    At fit (``categories`` None) the training categories are recorded; at
    predict they map the new frame's values to the same codes.
    """
    if not hasattr(X, "dtypes") or not hasattr(X, "select_dtypes"):
        return X, categories
    columns = [c for c in X.columns if str(X[c].dtype) == "category"]
    if not columns:
        return X, categories if categories is not None else {}
    recorded = categories if categories is not None else {
        c: list(X[c].cat.categories) for c in columns
    }
    X = X.copy()
    for c in columns:
        known = recorded.get(c)
        if known is None:
            raise ValueError(f"column {c!r} is categorical now but was not at fit")
        index = {v: float(i) for i, v in enumerate(known)}
        X[c] = np.array([index.get(v, np.nan) for v in X[c].astype(object)], dtype=np.float64)
    return X, recorded


class GBDTClassifier(ClassifierMixin, BaseEstimator):
    """Binary gradient-boosted trees (histogram, leaf-wise, exact TreeSHAP).

    Parameters are LightGBM's (``LGBMClassifier``) under the same names:
    ``n_estimators`` rounds, ``learning_rate``, ``num_leaves``, ``max_depth``
    (-1: unlimited), ``min_child_samples``, ``min_child_weight``,
    ``reg_alpha``, ``reg_lambda``, ``min_split_gain``, ``max_bin``,
    ``subsample`` with ``subsample_freq``, ``colsample_bytree``,
    ``scale_pos_weight``. ``early_stopping_rounds`` with an ``eval_set`` in
    :meth:`fit` stops when ``eval_metric`` (``"logloss"`` or ``"auc"``) has not
    improved for that many rounds. ``categorical_features``: column indexes
    (or names, with a data frame) holding integer codes; pandas ``category``
    columns are always categorical. Missing values (NaN) learn a direction.
    ``random_state`` seeds bagging and feature sampling: the same seed gives
    the same model for any ``n_jobs`` (0: one thread per core).
    """

    def __init__(
        self,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        min_child_weight: float = 1e-3,
        reg_alpha: float = 0.0,
        reg_lambda: float = 0.0,
        min_split_gain: float = 0.0,
        max_bin: int = 255,
        subsample: float = 1.0,
        subsample_freq: int = 0,
        colsample_bytree: float = 1.0,
        scale_pos_weight: float = 1.0,
        categorical_features: Optional[Sequence[Union[int, str]]] = None,
        early_stopping_rounds: Optional[int] = None,
        eval_metric: str = "logloss",
        use_quantized_grad: bool = False,
        importance_type: str = "split",
        random_state: Optional[int] = None,
        n_jobs: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.min_child_weight = min_child_weight
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.min_split_gain = min_split_gain
        self.max_bin = max_bin
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.scale_pos_weight = scale_pos_weight
        self.categorical_features = categorical_features
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_metric = eval_metric
        self.use_quantized_grad = use_quantized_grad
        self.importance_type = importance_type
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def _params_json(self) -> str:
        metric = {"logloss": "LogLoss", "auc": "Auc"}.get(self.eval_metric)
        if metric is None:
            raise ValueError(f"eval_metric={self.eval_metric!r}: use 'logloss' or 'auc'")
        if self.importance_type not in ("split", "gain"):
            raise ValueError(f"importance_type={self.importance_type!r}: use 'split' or 'gain'")
        seed = 0 if self.random_state is None else int(self.random_state)
        if seed < 0:
            raise ValueError(f"random_state={self.random_state}: must be >= 0")
        return json.dumps(
            {
                "num_iterations": int(self.n_estimators),
                "learning_rate": float(self.learning_rate),
                "num_leaves": int(self.num_leaves),
                "max_depth": None if self.max_depth is None or self.max_depth <= 0 else int(self.max_depth),
                "min_data_in_leaf": int(self.min_child_samples),
                "min_sum_hessian_in_leaf": float(self.min_child_weight),
                "lambda_l1": float(self.reg_alpha),
                "lambda_l2": float(self.reg_lambda),
                "min_gain_to_split": float(self.min_split_gain),
                "max_bin": int(self.max_bin),
                "bagging_fraction": float(self.subsample),
                "bagging_freq": int(self.subsample_freq),
                "feature_fraction": float(self.colsample_bytree),
                "scale_pos_weight": float(self.scale_pos_weight),
                "early_stopping_rounds": None
                if self.early_stopping_rounds is None
                else int(self.early_stopping_rounds),
                "stopping_metric": metric,
                "use_quantized_grad": bool(self.use_quantized_grad),
                "seed": seed,
            }
        )

    def _categorical_indexes(self, X: Any, pandas_categorical: dict) -> list:
        names = list(getattr(self, "feature_names_in_", []))
        indexes = set()
        for c in self.categorical_features or []:
            if isinstance(c, str):
                if c not in names:
                    raise ValueError(f"categorical_features: no column {c!r}")
                indexes.add(names.index(c))
            else:
                if not 0 <= int(c) < self.n_features_in_:
                    raise ValueError(f"categorical_features: column {c} of {self.n_features_in_}")
                indexes.add(int(c))
        for c in pandas_categorical:
            indexes.add(names.index(c))
        return sorted(indexes)

    def _matrix(self, X: Any, reset: bool) -> np.ndarray:
        X, categories = _codes(X, None if reset else self._pandas_categorical)
        if reset:
            self._pandas_categorical = categories or {}
        X = validate_data(
            self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan", order="C"
        )
        return np.ascontiguousarray(X, dtype=np.float64)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, eval_set: Any = None) -> "GBDTClassifier":
        """Fits on ``X`` and binary ``y``; ``eval_set=[(X_valid, y_valid)]``
        is watched by early stopping (``early_stopping_rounds``)."""
        X, categories = _codes(X, None)
        self._pandas_categorical = categories or {}
        X, y = validate_data(
            self, X, y, dtype=np.float64, ensure_all_finite="allow-nan", order="C"
        )
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) > 2:
            raise ValueError(
                "Only binary classification is supported. "
                f"GBDTClassifier: y has {len(self.classes_)} classes"
            )
        if len(self.classes_) < 2:
            raise ValueError("GBDTClassifier needs two classes in y, got one class")
        labels = (y == self.classes_[1]).astype(np.float64)
        weights = None
        if sample_weight is not None:
            weights = np.ascontiguousarray(sample_weight, dtype=np.float64)
            if weights.shape != (X.shape[0],):
                raise ValueError(f"sample_weight has shape {weights.shape}, X has {X.shape[0]} rows")
            if not np.any(weights > 0):
                raise ValueError("every sample weight is zero: nothing to learn from")
            if len(np.unique(labels[weights > 0])) < 2:
                raise ValueError("one class only among the rows of non-zero sample weight")
        valid_x = valid_y = None
        if eval_set:
            if len(eval_set) != 1:
                raise ValueError("eval_set: one (X, y) pair")
            vx, vy = eval_set[0]
            valid_x = self._matrix(vx, reset=False)
            valid_y = (np.asarray(vy) == self.classes_[1]).astype(np.float64)
        elif self.early_stopping_rounds is not None:
            raise ValueError("early_stopping_rounds needs an eval_set in fit")
        if hasattr(self, "feature_names_in_"):
            names = [str(n) for n in self.feature_names_in_]
        else:
            names = [f"Column_{j}" for j in range(X.shape[1])]
        self.booster_ = _churn.Booster.fit(
            np.ascontiguousarray(X, dtype=np.float64),
            labels,
            params=self._params_json(),
            feature_names=names,
            categorical=self._categorical_indexes(X, self._pandas_categorical),
            sample_weight=weights,
            valid_x=valid_x,
            valid_y=valid_y,
            n_jobs=int(self.n_jobs),
        )
        self.best_iteration_ = self.booster_.best_iteration
        self.evals_result_ = {"valid_0": {self.eval_metric: list(self.booster_.valid_metric)}}
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Margins (log-odds of the positive class)."""
        check_is_fitted(self)
        return self.booster_.predict_raw(self._matrix(X, reset=False), n_jobs=int(self.n_jobs))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of ``classes_``: rows × 2."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class."""
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def shap_values(self, X: Any, with_base: bool = False) -> np.ndarray:
        """Exact TreeSHAP values on the log-odds scale: rows × features (as
        ``shap.TreeExplainer``), or rows × (features + 1) with the base value
        last (as LightGBM's ``pred_contrib``) when ``with_base``."""
        check_is_fitted(self)
        values = self.booster_.shap_values(self._matrix(X, reset=False), n_jobs=int(self.n_jobs))
        return values if with_base else values[:, :-1]

    @property
    def expected_value_(self) -> float:
        """The SHAP base value: the mean training margin."""
        check_is_fitted(self)
        return self.booster_.expected_value

    @property
    def feature_importances_(self) -> np.ndarray:
        """Per feature: the number of splits on it (``importance_type="split"``)
        or their total gain (``"gain"``), as LightGBM reports them."""
        check_is_fitted(self)
        pairs = self.booster_.importance()
        column = 0 if self.importance_type == "gain" else 1
        return np.array([p[column] for p in pairs], dtype=np.float64 if column == 0 else np.int64)

    @property
    def n_estimators_(self) -> int:
        """Trees kept (fewer than ``n_estimators`` after early stopping)."""
        check_is_fitted(self)
        return self.booster_.num_trees

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if "booster_" in state:
            state["booster_"] = bytes(self.booster_.to_bytes())
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("booster_"), bytes):
            state["booster_"] = _churn.Booster.from_bytes(state["booster_"])
        self.__dict__.update(state)
