"""Shipping models, explainers and estimators to workers as plain data, never as pickled objects.

A *payload* is a tree of ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, numeric numpy
arrays, lists, tuples and dicts with string keys, and nothing else: whatever carries it (a
process pool's pickle, Dask's serialisation) then only ever moves data, and a worker rebuilds
the objects from data it can check. What each object becomes:

* a torch module: a scrutiny zoo model travels as its class name, its constructor arguments and
  its ``state_dict`` (arrays); any other module travels as TorchScript bytes (``torch.jit.save``
  of the module if it is a ScriptModule, else of ``torch.jit.script(module)``). A module neither
  scriptable nor from the zoo is refused with a :class:`~scrutiny.exceptions.CapabilityError`
  naming the fix;
* a scikit-learn estimator: skops bytes (``skops.io.dumps``), loaded back trusting only types
  from scikit-learn, numpy and scipy;
* a plain callable: only a top-level function of an importable module, by reference
  (``"module:qualname"``); lambdas, closures and functions of ``__main__`` are refused;
* an explainer or estimator of scrutiny: its class (``"scrutiny.x.y:Class"``, only from the
  scrutiny package) and its ``get_params()``, each packed by these rules;
* a ``numpy.random.Generator``: its bit generator's state, so that every chunk starts from the
  very state the serial call would have started from.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
from typing import Any

import numpy as np

from ..exceptions import CapabilityError, InvalidParameterError
from ..models import CallableModel, ModelAdapter, SklearnModel, TorchModel, as_model

__all__ = ["pack_model", "unpack_model", "pack_estimator", "unpack_estimator", "pack_object", "unpack_object", "pack_value", "unpack_value",
           "payload_digest", "rebuild"]

_TAG = "__scrutiny_ship__"
_SKLEARN_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _unshippable(what: str, fix: str) -> CapabilityError:
    return CapabilityError(
        f"cannot ship {what} to distributed workers: {fix} scrutiny moves models and explainers as data "
        "(weights and architecture, skops bytes, importable references), never as pickled objects."
    )


# -- plain values --------------------------------------------------------------------------------
def pack_value(value: Any, where: str = "value") -> Any:
    """``value`` as a payload (see the module doc); objects scrutiny can rebuild are tagged."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise _unshippable(f"{where} (an object array)", "pass a numeric array.")
        return value
    if isinstance(value, np.random.Generator):
        return {_TAG: "generator", "state": value.bit_generator.state}
    if isinstance(value, (list, tuple)):
        packed = [pack_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return packed if isinstance(value, list) else {_TAG: "tuple", "items": packed}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _unshippable(f"{where} (a dict with non-string keys)", "use string keys.")
        return {k: pack_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return {_TAG: "torch_dtype", "name": str(value).replace("torch.", "")}
    if isinstance(value, ModelAdapter) or _looks_like_model(value):
        return {_TAG: "model", "spec": pack_model(value, where)}
    if isinstance(value, type):
        return {_TAG: "class", "ref": _scrutiny_class_ref(value, where)}
    if hasattr(value, "get_params") and type(value).__module__.startswith("scrutiny."):
        return pack_object(value, where)
    if callable(value):
        return {_TAG: "function", "ref": _function_ref(value, where)}
    raise _unshippable(f"{where} of type {type(value).__name__}",
                       "pass plain data (numbers, strings, numpy arrays) or a scrutiny object.")


def _looks_like_model(value: Any) -> bool:
    if hasattr(value, "named_parameters") and hasattr(value, "state_dict"):
        return True
    return hasattr(value, "fit") and hasattr(value, "get_params") and not type(value).__module__.startswith("scrutiny.")


def unpack_value(value: Any) -> Any:
    """The inverse of :func:`pack_value`."""
    if isinstance(value, list):
        return [unpack_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: unpack_value(v) for k, v in value.items()}
    if tag == "tuple":
        return tuple(unpack_value(v) for v in value["items"])
    if tag == "generator":
        state = value["state"]
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    if tag == "torch_dtype":
        import torch

        return getattr(torch, value["name"])
    if tag == "model":
        return unpack_model(value["spec"])
    if tag == "class":
        return _resolve(value["ref"], scrutiny_only=True)
    if tag == "function":
        return _resolve(value["ref"], scrutiny_only=False)
    if tag == "object":
        return unpack_object(value)
    raise InvalidParameterError(f"unknown shipped value tag {tag!r}; the workers run another scrutiny version.")


def _resolve(ref: str, scrutiny_only: bool) -> Any:
    module_name, _, qualname = ref.partition(":")
    if scrutiny_only and not (module_name == "scrutiny" or module_name.startswith("scrutiny.")):
        raise InvalidParameterError(f"refusing to rebuild {ref!r}: only scrutiny classes are rebuilt on workers.")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _scrutiny_class_ref(cls: type, where: str) -> str:
    if not cls.__module__.startswith("scrutiny"):
        raise _unshippable(f"{where} (the class {cls.__qualname__} of {cls.__module__})",
                           "only scrutiny's own classes are shipped by name.")
    return f"{cls.__module__}:{cls.__qualname__}"


def _function_ref(fn: Any, where: str) -> str:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        raise _unshippable(
            f"{where} (the callable {qualname or type(fn).__name__} of {module})",
            "define it as a top-level function in an importable module (not a lambda, closure or __main__).",
        )
    try:
        if _resolve(f"{module}:{qualname}", scrutiny_only=False) is not fn:
            raise AttributeError
    except (ImportError, AttributeError) as exc:
        raise _unshippable(f"{where} ({module}.{qualname})", "it is not reachable by its import path.") from exc
    return f"{module}:{qualname}"


# -- scrutiny objects -------------------------------------------------------------------------------
def pack_object(obj: Any, where: str = "object") -> dict:
    """A scrutiny explainer or estimator as its class reference and its packed ``get_params()``."""
    cls = type(obj)
    params = {k: pack_value(v, f"{cls.__name__}.{k}") for k, v in obj.get_params().items()}
    return {_TAG: "object", "ref": _scrutiny_class_ref(cls, where), "params": params}


def unpack_object(payload: dict) -> Any:
    cls = _resolve(payload["ref"], scrutiny_only=True)
    params = {k: unpack_value(v) for k, v in payload["params"].items()}
    return cls(**params)


# -- models ---------------------------------------------------------------------------------------
def pack_model(model: Any, where: str = "model") -> dict:
    """A model (raw or wrapped) as data: see the module doc."""
    adapter = as_model(model)
    if isinstance(adapter, TorchModel):
        return _pack_torch(adapter, where)
    if isinstance(adapter, SklearnModel):
        return _pack_sklearn(adapter, where)
    if isinstance(adapter, CallableModel):
        return {"kind": "callable", "fn": _function_ref(adapter.fn, where), "output": adapter.output,
                "batch_size": adapter.batch_size}
    raise _unshippable(f"{where} ({type(adapter).__name__})", "wrap a torch module, a scikit-learn estimator "
                       "or an importable function with scrutiny.as_model.")


def _pack_torch(adapter: TorchModel, where: str) -> dict:
    import torch

    if callable(adapter.features_spec):
        raise _unshippable(f"{where}'s features callable", "pass features as a layer name.")
    module = adapter.module
    spec: dict[str, Any] = {
        "kind": "torch", "output": adapter.output, "batch_size": adapter.batch_size,
        "features": adapter.features_spec, "device": str(adapter.device),
        "dtype": None if adapter._dtype is None else str(adapter._dtype).replace("torch.", ""),
        "memory_format": adapter.memory_format,
    }
    zoo = _zoo_spec(module)
    if zoo is not None:
        spec["module"] = zoo
        return spec
    scripted = module if isinstance(module, torch.jit.ScriptModule) else None
    if scripted is None:
        try:
            scripted = torch.jit.script(module)
        except Exception as exc:  # torch raises many types for unscriptable code
            raise _unshippable(
                f"{where} (the torch module {type(module).__name__}, which torch.jit.script cannot compile: "
                f"{str(exc).splitlines()[0][:120]})",
                "pass torch.jit.trace(module, example_input) or torch.jit.script(module) instead, or build the "
                "network with scrutiny.zoo.make_model.",
            ) from exc
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    spec["module"] = {"kind": "torchscript", "bytes": buffer.getvalue()}
    return spec


def _zoo_classes() -> dict[str, type]:
    """The zoo's architectures by their :func:`scrutiny.zoo.make_model` names."""
    from ..zoo import MLP, LogisticRegression, SmallCNN

    return {"logistic": LogisticRegression, "mlp": MLP, "cnn": SmallCNN}


def _zoo_spec(module: Any) -> dict | None:
    import inspect

    name = {cls: n for n, cls in _zoo_classes().items()}.get(type(module))
    if name is None:
        return None
    args = {}
    for p in inspect.signature(type(module)).parameters:
        if p == "random_state":
            continue
        if not hasattr(module, p):
            return None
        args[p] = pack_value(getattr(module, p), f"zoo {name}.{p}")
    state = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    dtypes = {str(v.dtype) for v in module.state_dict().values() if v.is_floating_point()}
    return {"kind": "zoo", "name": name, "args": args, "state": state,
            "dtype": dtypes.pop().replace("torch.", "") if len(dtypes) == 1 else None}


def _skops_bytes(estimator: Any, where: str) -> bytes:
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is part of the dask extra
        raise _unshippable(f"{where} (a scikit-learn estimator)", "install skops (pip install 'scrutiny[dask]').") from exc
    data = sio.dumps(estimator)
    untrusted = [t for t in sio.get_untrusted_types(data=data) if not t.startswith(_SKLEARN_TRUSTED_PREFIXES)]
    if untrusted:
        raise _unshippable(f"{where} ({type(estimator).__name__})",
                           f"it contains types skops does not trust: {untrusted[:5]}; use scikit-learn's own "
                           "estimators, or save the model with skops and load it on the workers yourself.")
    return data


def _skops_load(data: bytes) -> Any:
    import skops.io as sio

    trusted = [t for t in sio.get_untrusted_types(data=data) if t.startswith(_SKLEARN_TRUSTED_PREFIXES)]
    return sio.loads(data, trusted=trusted)


def _pack_sklearn(adapter: SklearnModel, where: str) -> dict:
    return {"kind": "sklearn", "skops": _skops_bytes(adapter.estimator, where), "method": adapter.method,
            "batch_size": adapter.batch_size}


def pack_estimator(estimator: Any, where: str = "estimator") -> dict:
    """A scikit-learn estimator, fitted or not, as data (skops bytes; see the module doc)."""
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise _unshippable(f"{where} ({type(estimator).__name__})", "pass a scikit-learn estimator.")
    return {"kind": "sklearn-estimator", "skops": _skops_bytes(estimator, where)}


def unpack_estimator(spec: dict) -> Any:
    """The estimator a :func:`pack_estimator` spec describes (only scikit-learn, numpy and scipy
    types are trusted)."""
    if not isinstance(spec, dict) or spec.get("kind") != "sklearn-estimator":
        raise InvalidParameterError("unpack_estimator takes what pack_estimator returns.")
    return _skops_load(spec["skops"])


def unpack_model(spec: dict) -> ModelAdapter:
    """The adapter a :func:`pack_model` spec describes."""
    kind = spec["kind"]
    if kind == "callable":
        return CallableModel(_resolve(spec["fn"], scrutiny_only=False), output=spec["output"],
                             batch_size=spec["batch_size"])
    if kind == "sklearn":
        return SklearnModel(_skops_load(spec["skops"]), method=spec["method"], batch_size=spec["batch_size"])
    if kind != "torch":
        raise InvalidParameterError(f"unknown model kind {kind!r}; the workers run another scrutiny version.")
    import torch

    mod = spec["module"]
    if mod["kind"] == "zoo":
        module = _zoo_classes()[mod["name"]](**{k: unpack_value(v) for k, v in mod["args"].items()})
        if mod["dtype"] is not None:
            module = module.to(getattr(torch, mod["dtype"]))
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in mod["state"].items()})
    else:
        module = torch.jit.load(io.BytesIO(mod["bytes"]))
    module.eval()
    dtype = None if spec["dtype"] is None else getattr(torch, spec["dtype"])
    return TorchModel(module, output=spec["output"], batch_size=spec["batch_size"], features=spec["features"],
                      device=spec["device"], dtype=dtype, memory_format=spec["memory_format"])


# -- digests and the worker-side cache ------------------------------------------------------------
def payload_digest(payload: Any) -> str:
    """A SHA-256 of a payload (arrays by dtype, shape and bytes): the configuration hash of a job."""
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, np.ndarray):
            h.update(f"nd{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, dict):
            h.update(b"{")
            for k in sorted(v):
                h.update(json.dumps(k).encode())
                feed(v[k])
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                feed(x)
            h.update(b"]")
        elif isinstance(v, bytes):
            h.update(b"b" + hashlib.sha256(v).digest())
        else:
            h.update(repr((type(v).__name__, v)).encode())

    feed(payload)
    return h.hexdigest()


_CACHE: dict[str, Any] = {}
_CACHE_SIZE = 4


def rebuild(token: str, payload: dict, build: Any) -> Any:
    """The object ``build(payload)`` made once per worker process and reused by every task of the
    job ``token`` (the model is rebuilt once per worker, not once per chunk)."""
    hit = _CACHE.get(token)
    if hit is None:
        hit = build(payload)
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[token] = hit
    return hit
