"""Safe weight files (state_dict loaded with weights_only=True)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._validation import (
    _describe,
)
from ..exceptions import (
    DataFormatError,
    InvalidParameterError,
)
from ._models import _ZooModel

_FORMAT = "scrutiny-zoo-weights"
_FORMAT_VERSION = 1

# --------------------------------------------------------------------------- weight files


def _architecture(model: nn.Module) -> dict[str, Any] | None:
    if isinstance(model, _ZooModel):
        cfg = model.config()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    return None


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save the model's ``state_dict`` (plus a small architecture description) with :func:`torch.save`.

    The file holds only tensors, strings and numbers, so :func:`load_weights` can read it
    with ``torch.load(weights_only=True)``. The write is atomic (temporary file + rename).

    Parameters
    ----------
    model : torch.nn.Module
        The model whose parameters and buffers are saved (moved to CPU).
    path : str or path-like
        Destination file (conventionally ``*.pt``); parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> from scrutiny.zoo import make_model, save_weights, load_weights
    >>> model = make_model("mlp", (1, 8, 8), 10)
    >>> save_weights(model, "mlp.pt")              # doctest: +SKIP
    >>> load_weights(make_model("mlp", (1, 8, 8), 10, random_state=1), "mlp.pt")  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module; got {_describe(model)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "architecture": _architecture(model),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights saved by :func:`save_weights` (or a bare ``state_dict``) into ``model``.

    The file is read with ``torch.load(path, weights_only=True, map_location="cpu")``: it
    can hold tensors and plain containers only, never arbitrary pickled objects.

    Parameters
    ----------
    model : torch.nn.Module
        A model of the same architecture; modified in place and put in eval mode.
    path : str or path-like
        The weight file.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    InvalidParameterError
        If the file does not exist or its parameters do not match ``model`` (the message
        lists missing, unexpected and mis-shaped entries and both architectures).
    DataFormatError
        If the file is not a weights file (corrupt, or holding non-tensor objects).
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module; got {_describe(model)}.")
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"path must be an existing weight file; {str(path)!r} is not a file. Save one with save_weights(model, path)."
        )
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError ...
        text = str(exc)
        if "WeightsUnpickler error:" in text:  # name the offending object, not torch's how-to-bypass advice
            text = text.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed", 1)[0].strip()
            reason = f"it holds Python objects other than tensors ({text})"
        else:
            reason = f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"
        raise DataFormatError(
            f"{str(path)!r} is not a readable weights file: {reason}. Only files holding tensors and plain "
            "containers (e.g. written by save_weights) can be loaded; arbitrary pickles are refused for safety."
        ) from exc
    arch = None
    if isinstance(payload, dict) and payload.get("format") == _FORMAT:
        state, arch = payload.get("state_dict"), payload.get("architecture")
    else:
        state = payload
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFormatError(
            f"{str(path)!r} does not hold a state_dict (a dict of tensors); got {type(state).__name__}."
        )
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing from the file: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if mis_shaped:
            parts.append(f"shape mismatch: {mis_shaped[:5]}{' ...' if len(mis_shaped) > 5 else ''}")
        saved = f" The file was saved from {arch}." if arch else ""
        ours = _architecture(model)
        raise InvalidParameterError(
            f"The weights in {str(path)!r} do not fit {type(model).__name__}"
            f"{f' {ours}' if ours else ''}: {'; '.join(parts)}.{saved} "
            "Build the model with the same architecture (make_model with the same name, input_shape, "
            "n_classes and options) before loading."
        )
    model.load_state_dict(state)
    return model.eval()
