"""The shared adapter base (:class:`ModelAdapter`) and the scikit-learn and callable adapters."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from .._validation import check_array
from ..exceptions import CapabilityError, InvalidParameterError, ModelError, NotFittedError
from ._convert import (
    DEFAULT_BATCH_SIZE_ARRAY,
    OUTPUT_KINDS,
    PROBA_EPS,
    log_odds_from_logits,
    log_odds_from_proba,
    proba_from_logits,
)

__all__ = ["ModelAdapter", "CallableModel", "SklearnModel"]


class ModelAdapter:
    """Chunked, checked prediction shared by the three adapters (the type :func:`as_model` returns).

    Implements the :class:`~scrutiny.models.Model` protocol. Subclasses implement
    ``_predict_chunk(X) -> array-like (m, n_outputs)`` and may override
    :meth:`rows_per_call`. The rows per call are resolved per call from the input's row size
    and never stored back on the adapter, so no call changes a later default.
    """

    output: str
    batch_size: int | None
    capabilities: frozenset = frozenset({"predict"})
    n_outputs_: int | None = None
    input_shape_: tuple[int, ...] | None = None
    #: numpy dtype the wrapped model consumes without a conversion (explainers build their
    #: perturbed rows in it)
    input_dtype: Any = np.float64
    #: rows per call when ``batch_size`` is None
    default_batch_size: int = DEFAULT_BATCH_SIZE_ARRAY

    def _init_common(self, output: str, batch_size: int | None) -> None:
        if output not in OUTPUT_KINDS:
            raise InvalidParameterError(
                f"output must be one of {', '.join(OUTPUT_KINDS)}; got {output!r}. Say what the "
                "model returns: 'logit' for raw scores of a classifier, 'probability' for "
                "probabilities, 'regression' for real-valued predictions."
            )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise InvalidParameterError(
                f"batch_size must be a positive int or None; got {batch_size!r}. None lets the adapter "
                "choose the rows per call from the sample size."
            )
        self.output = output
        self.batch_size = None if batch_size is None else int(batch_size)

    # -- input checks -------------------------------------------------------------------
    def check_input(self, X: Any) -> np.ndarray:
        """Validate ``X`` as this model's input: numeric, finite, non-empty, (n, ...) with the known sample shape.

        Arrays already in ``input_dtype`` are kept as they are (float32 rows for a float32 torch
        module need no float64 round trip); anything else becomes float64.
        """
        native = isinstance(X, np.ndarray) and X.dtype == self.input_dtype
        X = check_array(X, "X", min_samples=1, dtype=None if native else np.float64)
        if X.ndim == 1:
            raise InvalidParameterError(
                f"X must be a batch of samples with shape (n_samples, ...); got a 1-d array of shape "
                f"{X.shape}. For one sample use X[None] (or X.reshape(1, -1))."
            )
        if self.input_shape_ is not None and X.shape[1:] != self.input_shape_:
            raise InvalidParameterError(
                f"X must have per-sample shape {self.input_shape_} (as first seen by this model); "
                f"got {X.shape[1:]}. Reshape the input to match what the model was trained on."
            )
        return X

    def _check_output(self, out: Any, n_rows: int, start: int) -> np.ndarray:
        try:
            out = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"The model returned a non-numeric output ({exc}).") from exc
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != n_rows:
            raise ModelError(
                f"The model returned an output of shape {out.shape} for a batch of {n_rows} rows; "
                "expected (n_rows,) or (n_rows, n_outputs). Make the model return one row per input."
            )
        if self.n_outputs_ is not None and out.shape[1] != self.n_outputs_:
            raise ModelError(
                f"The model returned {out.shape[1]} outputs for rows starting at {start} but "
                f"{self.n_outputs_} earlier; the number of outputs must not depend on the input."
            )
        return out

    def rows_per_call(self, row_size: int) -> int:
        """Rows sent to the wrapped model per call for samples of ``row_size`` values:
        ``batch_size`` if given, else the adapter's default."""
        return self.default_batch_size if self.batch_size is None else int(self.batch_size)

    def _batches(self, X: np.ndarray) -> Iterator[slice]:
        """Row slices of ``X``, ``rows_per_call`` rows each (resolved for this call only)."""
        n, rows = X.shape[0], self.rows_per_call(int(np.prod(X.shape[1:])))
        for start in range(0, n, rows):
            yield slice(start, min(start + rows, n))

    # -- public prediction ----------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Raw model outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float64
        """
        X = self.check_input(X)
        chunks = []
        for sl in self._batches(X):
            try:
                raw = self._predict_chunk(X[sl])
            except (InvalidParameterError, ModelError, CapabilityError, NotFittedError):
                raise
            except Exception as exc:  # the wrapped model failed: say so, keep the cause
                raise ModelError(
                    f"The wrapped model raised {type(exc).__name__} while predicting rows "
                    f"{sl.start}..{sl.stop - 1} (batch of shape {X[sl].shape}): {exc}"
                ) from exc
            out = self._check_output(raw, sl.stop - sl.start, sl.start)
            if self.n_outputs_ is None:
                self.n_outputs_ = out.shape[1]
            chunks.append(out)
        result = np.concatenate(chunks, axis=0)
        finite = np.isfinite(result)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            raise ModelError(
                f"The model returned NaN or inf for {rows.size} input row(s) (first: row {rows[0]}). "
                "Check the model on these inputs; explanations of non-finite outputs are meaningless."
            )
        if self.input_shape_ is None:
            self.input_shape_ = tuple(X.shape[1:])
        return result

    def _require_classifier(self, what: str) -> None:
        if self.output == "regression":
            raise CapabilityError(
                f"{what} needs a classifier; this model's output is 'regression'. Pass "
                "output='logit' or 'probability' to as_model if the model is a classifier."
            )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes); see the module's output conventions."""
        self._require_classifier("predict_proba")
        out = self.predict(X)
        if self.output == "probability":
            return out
        return proba_from_logits(out)

    def predict_log_odds(self, X: Any, eps: float = PROBA_EPS) -> np.ndarray:
        """One-vs-rest log-odds ``log(p_c / (1 - p_c))`` per class, shape (n_samples, n_classes)."""
        self._require_classifier("predict_log_odds")
        out = self.predict(X)
        if self.output == "probability":
            return log_odds_from_proba(out, eps)
        return log_odds_from_logits(out, eps)

    def predict_class(self, X: Any) -> np.ndarray:
        """Index of the largest output per sample (the default explained target), int64."""
        out = self.predict(X)
        if out.shape[1] == 1 and self.output in ("logit", "decision"):
            return (out[:, 0] > 0).astype(np.int64)
        return np.argmax(out, axis=1).astype(np.int64)

    @property
    def n_outputs(self) -> int | None:
        """Number of raw outputs, known after the first call to ``predict`` (or given)."""
        return self.n_outputs_

    def default_target(self, X: Any) -> np.ndarray:
        """The output explained when ``target=None``: the predicted class, or output 0 for a
        model with a single output (a regression value or a binary logit)."""
        out = self.predict(X)
        if out.shape[1] == 1:
            return np.zeros(out.shape[0], dtype=np.int64)
        return np.argmax(out, axis=1).astype(np.int64)

    def _predict_chunk(self, X: np.ndarray) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = f"output={self.output!r}"
        if self.batch_size is not None:
            shown += f", batch_size={self.batch_size}"
        return f"{type(self).__name__}({shown})"


# --------------------------------------------------------------------------- callables


class CallableModel(ModelAdapter):
    """Wrap a vectorised function ``f(X_batch) -> (m,) or (m, n_outputs)``.

    Parameters
    ----------
    fn : callable
        Takes a float64 array of shape (m, ...) and returns one row per input.
    output : {"probability", "logit", "regression", "decision"}
        What ``fn`` returns.
    batch_size : int or None, default None
        Rows per call; None means 4096 (the per-call overhead dominates small batches).

    Examples
    --------
    >>> m = CallableModel(lambda X: X @ w, output="regression")   # doctest: +SKIP
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], output: str = "regression", batch_size: int | None = None):
        if not callable(fn):
            raise InvalidParameterError(f"fn must be callable; got {type(fn).__name__}.")
        self._init_common(output, batch_size)
        self.fn = fn
        self.capabilities = frozenset({"predict"})

    def _predict_chunk(self, X: np.ndarray) -> Any:
        return self.fn(X)


# --------------------------------------------------------------------------- scikit-learn


_SK_METHODS = ("predict_proba", "decision_function", "predict")


class SklearnModel(ModelAdapter):
    """Wrap a fitted scikit-learn estimator.

    Parameters
    ----------
    estimator : fitted scikit-learn estimator
    method : {"auto", "predict_proba", "decision_function", "predict"}, default "auto"
        Which method gives the outputs. ``"auto"`` uses ``predict_proba`` for classifiers
        that have it, else ``decision_function``, and ``predict`` for regressors.
    batch_size : int or None, default None
        Rows per call; None means 4096.

    Attributes
    ----------
    classes_ : ndarray or None
        The estimator's class labels; output column ``j`` is class ``classes_[j]``.
    """

    def __init__(self, estimator: Any, method: str = "auto", batch_size: int | None = None):
        from sklearn.base import is_classifier
        from sklearn.exceptions import NotFittedError as SkNotFitted
        from sklearn.utils.validation import check_is_fitted as sk_check_is_fitted

        if method not in ("auto",) + _SK_METHODS:
            raise InvalidParameterError(
                f"method must be 'auto', 'predict_proba', 'decision_function' or 'predict'; got {method!r}."
            )
        try:
            sk_check_is_fitted(estimator)
        except SkNotFitted as exc:
            raise NotFittedError(
                f"The {type(estimator).__name__} passed to as_model is not fitted. Call "
                f"estimator.fit(X, y) before explaining it."
            ) from exc
        classifier = is_classifier(estimator)
        if method == "auto":
            if classifier:
                method = next((m for m in _SK_METHODS[:2] if hasattr(estimator, m)), None)
                if method is None:
                    raise CapabilityError(
                        f"{type(estimator).__name__} is a classifier without predict_proba or "
                        "decision_function; its hard labels cannot be explained. Wrap it in "
                        "sklearn.calibration.CalibratedClassifierCV to get probabilities."
                    )
            else:
                method = "predict"
        if not hasattr(estimator, method):
            raise CapabilityError(f"{type(estimator).__name__} has no method {method!r}.")
        if method == "predict" and classifier:
            raise CapabilityError(
                f"method='predict' on the classifier {type(estimator).__name__} gives hard labels, "
                "which cannot be explained; use 'predict_proba' or 'decision_function'."
            )
        output = {"predict_proba": "probability", "decision_function": "decision", "predict": "regression"}[method]
        self._init_common(output, batch_size)
        self.estimator = estimator
        self.method = method
        self.classes_ = getattr(estimator, "classes_", None)
        self.capabilities = frozenset({"predict"})
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None:
            self.input_shape_ = (int(n_features),)
        if output == "probability" and self.classes_ is not None:
            self.n_outputs_ = len(self.classes_)

    def _predict_chunk(self, X: np.ndarray) -> Any:
        return getattr(self.estimator, self.method)(X)
