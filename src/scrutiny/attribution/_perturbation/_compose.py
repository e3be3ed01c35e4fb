"""From designs to model inputs, and chunked model evaluation in the explained output space.

* :func:`model_outputs` converts raw model outputs to the explained space (``"raw"``,
  ``"probability"``, ``"log_odds"``), keeping one column per raw output so that targets keep
  their meaning (a single-logit binary model is explained through ``sigmoid(z)``);
* :func:`evaluate` builds perturbed rows chunk by chunk (bounded memory) and sends each chunk
  to ``model.predict``, which splits it further into ``model.rows_per_call`` rows: never one call per
  sample;
* :func:`compose_images` is the vectorised image composition: gather ``Z[:, segments]`` into
  pixel masks, then ``where(mask, image, fill)``; :func:`fast_where` is that ``where``, on
  torch's multi-threaded kernel;
* :func:`segment_fill` is lime's ``hide_color=None``: every superpixel replaced by its mean.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.special import expit

from ..._validation import check_array
from ...exceptions import InvalidParameterError
from ...models import log_odds_from_logits, log_odds_from_proba

#: bytes of perturbed rows (counted as float64) built at once when ``batch_size`` is None:
#: small enough to stay in cache while they are composed and handed to the model, and never
#: less than one model call's rows (the KernelSHAP overhead ratio printed by
#: benchmarks/local_attribution.py -- total time over the model alone -- is the figure it keeps low)
CHUNK_BYTES = 4 * 2**20


def resolve_space(model: Any, space: str) -> str:
    """The explained space of a perturbation method: ``"auto"`` -> ``"probability"`` for
    classifiers, ``"raw"`` for regression models."""
    if space == "auto":
        return "raw" if model.output == "regression" else "probability"
    return space


def _softmax_inplace(Z: np.ndarray) -> np.ndarray:
    """Row softmax of a float64 array this module owns (no copies: it runs over every
    perturbed row). Few outputs: column by column, since numpy reduces short rows slowly."""
    K = Z.shape[1]
    if K == 2:  # softmax of two logits: the logistic function of their difference (one pass)
        d = Z[:, 1] - Z[:, 0]
        expit(d, out=Z[:, 1])
        np.subtract(1.0, Z[:, 1], out=Z[:, 0])
        return Z
    if K <= 16:
        cols = [Z[:, k] for k in range(K)]
        top = cols[0].copy()
        for c in cols[1:]:
            np.maximum(top, c, out=top)
        total = np.zeros_like(top)
        for c in cols:
            c -= top
            np.exp(c, out=c)
            total += c
        Z /= total[:, None]
        return Z
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


def model_outputs(model: Any, X: np.ndarray, space: str) -> np.ndarray:
    """Model outputs of ``X`` in the explained space, shape (n, n_outputs), float64."""
    raw = model.predict(X)
    if space == "raw" or model.output == "regression":
        return raw
    if space == "probability":
        if model.output == "probability":
            return raw
        return expit(raw) if raw.shape[1] == 1 else _softmax_inplace(raw)
    # log-odds
    if model.output == "probability":
        return log_odds_from_proba(raw)
    if raw.shape[1] == 1:
        return raw
    return log_odds_from_logits(raw)


def chunk_rows(model: Any, row_size: int, batch_size: int | None) -> int:
    """Rows per chunk: ``batch_size`` if given; else as many rows as fit in ``CHUNK_BYTES``,
    rounded down to a multiple of the model's rows per call so that every model call but the
    last is full, and at least one model call's worth."""
    if batch_size is not None:
        return int(batch_size)
    rows = max(1, CHUNK_BYTES // max(8 * int(row_size), 1))
    per_call = int(model.rows_per_call(row_size))
    return max(per_call, rows - rows % per_call)


def evaluate(
    model: Any,
    space: str,
    n_rows: int,
    build: Callable[[int, int], np.ndarray],
    rows_per_chunk: int,
) -> np.ndarray:
    """Outputs of the ``n_rows`` perturbed rows ``build(start, stop)``, shape (n_rows, K)."""
    outs = [
        model_outputs(model, build(s, min(s + rows_per_chunk, n_rows)), space)
        for s in range(0, n_rows, rows_per_chunk)
    ]
    return np.concatenate(outs, axis=0)


# --------------------------------------------------------------------------- images


def segment_fill(image: np.ndarray, labels: np.ndarray, n_seg: int) -> np.ndarray:
    """Each superpixel replaced by its mean value per channel.

    Parameters
    ----------
    image : array of shape (C, H, W) or (H, W)
    labels : int array of shape (H, W), values 0..n_seg-1
    """
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n_seg).astype(np.float64)
    if image.ndim == 2:
        means = np.bincount(flat, weights=image.ravel(), minlength=n_seg) / counts
        return means[labels]
    means = np.stack([np.bincount(flat, weights=ch.ravel(), minlength=n_seg) / counts for ch in image])
    return means[:, labels]


def resolve_segments(spec: Any, params: dict | None, X: np.ndarray, owner: str, name: str = "segments") -> np.ndarray:
    """Per-image superpixel labels, renumbered ``0..S_i-1``, shape (n, H, W).

    ``spec`` is a method of :func:`scrutiny.data.segment` (with ``params``) or integer labels
    of shape (H, W) (shared by every image) or (n, H, W); ``name`` is the parameter's name in
    error messages.
    """
    n, spatial = X.shape[0], X.shape[-2:]
    if isinstance(spec, str):
        from ...data import segment

        images = X if X.ndim == 4 else X[:, None]
        try:
            labels = segment(images, method=spec, **dict(params or {}))
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{owner}: segmenting X with {name}={spec!r} failed: {exc}") from exc
        return labels.reshape((n,) + spatial)
    labels = np.asarray(spec)
    if labels.dtype == object or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidParameterError(
            f"{owner}: {name} must be integer labels (or a method name); got dtype {labels.dtype}. "
            "Use scrutiny.data.segment(X) to compute them."
        )
    if labels.shape == spatial:
        labels = np.broadcast_to(labels, (n,) + spatial)
    elif labels.shape != (n,) + spatial:
        raise InvalidParameterError(
            f"{owner}: {name} must have shape (H, W) = {spatial} or (n, H, W) = {(n,) + spatial} to match X "
            f"of shape {X.shape}; got {labels.shape}. Compute them with scrutiny.data.segment(X)."
        )
    out = np.empty(labels.shape, dtype=np.int64)
    for i in range(n):
        out[i] = np.unique(labels[i], return_inverse=True)[1].reshape(spatial)
    return out


def resolve_fills(
    spec: Any, X: np.ndarray, labels: np.ndarray, n_seg: np.ndarray, owner: str, name: str = "baseline"
) -> np.ndarray:
    """What each image's hidden superpixels become, shape ``X.shape``: ``"mean"`` (each
    superpixel's mean, lime's ``hide_color=None``), a number, or an array broadcastable to one
    image. ``labels`` and ``n_seg`` are those of :func:`resolve_segments`."""
    if isinstance(spec, str):
        return np.stack([segment_fill(X[i], labels[i], int(n_seg[i])) for i in range(len(X))])
    arr = check_array(spec, name, min_samples=0) if np.ndim(spec) else np.asarray(float(spec))
    try:
        fill = np.broadcast_to(arr, X.shape[1:])
    except ValueError:
        raise InvalidParameterError(
            f"{owner}: {name} must be a number, 'mean' or an array broadcastable to one image "
            f"{X.shape[1:]}; got shape {arr.shape}."
        ) from None
    return np.broadcast_to(fill, X.shape)


def _operand(a: np.ndarray) -> Any:
    import torch

    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())  # torch warns on read-only memory


def fast_where(mask: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.where(mask, a, b)`` (broadcasting, exact) for the large perturbation arrays, run by
    torch's vectorised, multi-threaded kernel, which is faster than numpy's on these shapes
    (the KernelSHAP and image LIME overhead ratios of benchmarks/local_attribution.py include
    this composition). ``a`` and ``b`` should be small (one input, its fill or background)
    or fresh arrays: read-only ones are copied. ``out``: a C-contiguous array of the result's
    shape and dtype to write into (chunks are assembled in place, without a concatenation)."""
    import torch

    if out is None:
        return torch.where(_operand(mask), _operand(a), _operand(b)).numpy()
    torch.where(_operand(mask), _operand(a), _operand(b), out=torch.from_numpy(out))
    return out


def compose_images(
    image: np.ndarray, fill: np.ndarray, labels: np.ndarray, Z: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Images with the superpixels where ``Z == 0`` replaced by ``fill``.

    Parameters
    ----------
    image, fill : arrays of shape (C, H, W) or (H, W)
    labels : int array of shape (H, W)
    Z : array of shape (r, S), 0/1
    out : array of shape (r, *image.shape), optional
        Written in place and returned (see :func:`fast_where`).

    Returns
    -------
    array of shape (r, *image.shape)
    """
    # (r, H, W): one gather. np.take, not Z[:, labels]: fancy indexing returns the sample axis
    # as the fastest one, np.where keeps that layout, and torch then runs the convolutions and
    # pooling on strided inputs, markedly slower (the image LIME overhead ratio of
    # benchmarks/local_attribution.py includes this step)
    keep = np.take(Z.astype(bool), labels, axis=1)
    if image.ndim == 3:
        keep = keep[:, None]
    return fast_where(keep, image[None], fill[None], out=out)
