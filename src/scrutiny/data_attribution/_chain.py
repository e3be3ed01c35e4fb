"""Exact Hessians of chains of linear layers and elementwise maps (MLP heads), layer by layer.

A *chain* is the tail of a module whose output is computed as::

    a_l = W_l u_{l-1} + b_l,   u_l = phi_l(a_l)   (l = 1..m),   output z = a_m,

with ``phi_l`` a composition of parameter-free elementwise modules (tanh, ReLU, GELU, ...,
dropout in eval mode, identity). ``u_0`` is whatever feeds the first linear layer of the
chain (the input of an MLP, or the features of a convolutional body held fixed).

With ``u~ = [u, 1]``, ``g = dL/dz``, ``A = d^2L/dz^2`` and, per sample, the back-propagated
quantities ``delta_l = dL/da_l`` and ``H_l = d^2L/da_l^2``::

    delta_m = g,   delta_l = phi_l'(a_l) * (W_{l+1}^T delta_{l+1}),
    H_m = A,       H_l = D_l W_{l+1}^T H_{l+1} W_{l+1} D_l + diag(phi_l''(a_l) * W_{l+1}^T delta_{l+1})

(``D_l = diag(phi_l'(a_l))``; Botev et al., 2017), the exact Hessian of the loss in the
parameters ``[W_l, b_l]`` has the blocks::

    (l, l):   sum_i H_l (x) u~_{l-1} u~_{l-1}^T
    (l', l):  sum_i [ (H_{l'} G_{l',l}) (x) u~_{l'-1} u~_{l-1}^T + delta_{l'} (x) P~_{l'-1,l} (x) u~_{l-1} ]   (l' > l)

where ``G_{l',l} = da_{l'}/da_l`` and ``P_{l'-1,l} = du_{l'-1}/da_l`` (``P~``: with a zero row for
the constant 1). Every block is one matrix product over training points, so the whole
Hessian costs ``O(n p^2)`` flops in a handful of GEMMs instead of ``p`` Hessian-vector
products through the network. With ``m = 1`` this is the GLM form ``sum_i A_i (x) f~_i f~_i^T``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Chain", "ChainRecorder", "chain_hessian"]

# parameter-free modules that act elementwise on a (n, width) tensor (dropout: in eval mode)
_ELEMENTWISE = (
    "Identity", "Flatten", "Dropout", "AlphaDropout", "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU",
    "GELU", "SiLU", "Mish", "Softplus", "Sigmoid", "Tanh", "Hardtanh", "Hardsigmoid", "Hardswish", "Softsign",
    "Tanhshrink", "LogSigmoid", "Softshrink", "Hardshrink", "Threshold",
)

_CHUNK_NUMBERS = 4_000_000  # floats per row-chunk temporary


@dataclass
class Chain:
    """Per-sample quantities of a chain of ``m`` linear layers, for all training rows.

    Attributes
    ----------
    layers : list of str
        Module names of the linear layers, in forward order.
    weights : list of ndarray (o_l, n_l)
    has_bias : list of bool
    inputs : list of ndarray (n, n_l)
        ``u_{l-1}``, the input of each linear layer.
    d1, d2 : list of ndarray (n, o_l)
        First and second derivatives of the elementwise map after linear layer ``l`` (``l < m``).
    outputs : ndarray (n, c)
        The module's output ``z = a_m``.
    """

    layers: list[str]
    weights: list[np.ndarray]
    has_bias: list[bool]
    inputs: list[np.ndarray]
    d1: list[np.ndarray]
    d2: list[np.ndarray]
    outputs: np.ndarray

    def widths(self, l: int) -> tuple[int, int]:
        """``(o_l, n_l + [bias])``: rows and (augmented) columns of layer ``l``'s parameter block."""
        o, n_in = self.weights[l].shape
        return o, n_in + int(self.has_bias[l])

    def offsets(self) -> np.ndarray:
        sizes = [o * k for o, k in (self.widths(l) for l in range(len(self.layers)))]
        return np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def parameter_index(self, names: list[str]) -> np.ndarray | None:
        """Positions of the named parameters (``<layer>.weight`` / ``<layer>.bias``, in order)
        in the chain's layout ``[vec([W_1, b_1]), vec([W_2, b_2]), ...]``; None if a name is not a
        parameter of the chain."""
        off = self.offsets()
        idx = []
        for name in names:
            layer, _, role = name.rpartition(".")
            if layer not in self.layers or role not in ("weight", "bias"):
                return None
            l = self.layers.index(layer)
            o, k = self.widths(l)
            n_in = self.weights[l].shape[1]
            if role == "weight":
                idx.append(off[l] + (np.arange(o)[:, None] * k + np.arange(n_in)[None, :]).ravel())
            elif self.has_bias[l]:
                idx.append(off[l] + np.arange(o) * k + n_in)
            else:
                return None
        return np.concatenate(idx)


@dataclass
class _Call:
    name: str
    module: Any
    inp: Any
    out: Any
    weight: Any = None
    bias: Any = None


def _is_elementwise(module: Any) -> bool:
    return (type(module).__name__ in _ELEMENTWISE and type(module).__module__.startswith("torch.nn")
            and not any(True for _ in module.parameters()) and not any(True for _ in module.buffers()))


def _same(a: Any, b: Any) -> bool:
    if a.shape[0] != b.shape[0] or a.numel() != b.numel() or a.dtype != b.dtype:
        return False
    return bool((a.reshape(a.shape[0], -1) == b.reshape(b.shape[0], -1)).all())


class ChainRecorder:
    """Find the chain that ends a module's forward pass and record its per-sample quantities.

    Parameters
    ----------
    module : torch.nn.Module
    selected : list of str
        Parameter names that must all belong to the chain; the chain starts at the first
        linear layer holding one of them.
    """

    def __init__(self, module: Any, selected: list[str]):
        self.module = module
        self.selected = list(selected)
        # parameter tensors owned by more than one module (tied weights): a chain layer holding one
        # would miss the other use's contribution to the Hessian
        owners: dict[int, int] = {}
        for _, mod in module.named_modules(remove_duplicate=False):
            for t in mod.parameters(recurse=False):
                owners[id(t)] = owners.get(id(t), 0) + 1
        self._shared = {i for i, k in owners.items() if k > 1}

    def _calls(self, forward: Any, x: Any) -> tuple[list[_Call], Any]:
        import torch

        calls: list[_Call] = []
        handles = []

        def hook(name: str) -> Any:
            def fn(mod: Any, inp: Any, out: Any) -> None:
                if isinstance(mod, torch.nn.Linear):  # inside functional_call: the float64 parameters
                    calls.append(_Call(name, mod, inp[0], out, mod.weight.detach(),
                                       None if mod.bias is None else mod.bias.detach()))
                else:
                    calls.append(_Call(name, mod, inp[0] if inp else None, out))
            return fn

        for name, mod in self.module.named_modules():
            if not any(True for _ in mod.children()):
                handles.append(mod.register_forward_hook(hook(name)))
        try:
            out = forward(x)
        finally:
            for h in handles:
                h.remove()
        return calls, out

    def _structure(self, calls: list[_Call], out: Any) -> list[tuple[_Call, list[_Call]]] | None:
        """``[(linear call, [elementwise calls after it]), ...]`` of the chain, or None."""
        import torch

        if not calls or not isinstance(calls[-1].module, torch.nn.Linear) or out.ndim != 2:
            return None
        if not isinstance(calls[-1].out, torch.Tensor) or not _same(calls[-1].out, out):
            return None
        k = len(calls) - 1
        while k > 0:
            prev, cur = calls[k - 1], calls[k]
            ok_mod = isinstance(prev.module, torch.nn.Linear) or _is_elementwise(prev.module)
            if not ok_mod or cur.inp is None or not isinstance(prev.out, torch.Tensor) or not _same(prev.out, cur.inp):
                break
            k -= 1
        tail = calls[k:]
        chain_mods = {id(c.module) for c in tail if isinstance(c.module, torch.nn.Linear)}
        if any(id(c.module) in chain_mods for c in calls[:k]):  # a chain layer also used before the chain
            return None
        if any(id(t) in self._shared for c in tail if isinstance(c.module, torch.nn.Linear)
               for t in c.module.parameters(recurse=False)):
            return None
        groups: list[tuple[_Call, list[_Call]]] = []
        for c in tail:
            if isinstance(c.module, torch.nn.Linear):
                if c.inp.ndim != 2:
                    groups = []  # a linear layer applied to >2-D input is not a per-sample vector map
                    continue
                groups.append((c, []))
            elif groups:
                groups[-1][1].append(c)
        names = [g[0].name for g in groups]
        if len(set(names)) != len(names):  # a linear layer called twice (shared weights)
            return None
        layer_of = {}
        for i, nm in enumerate(names):
            prefix = f"{nm}." if nm else ""
            layer_of[prefix + "weight"] = i
            layer_of[prefix + "bias"] = i
        if not self.selected or any(s not in layer_of for s in self.selected):
            return None
        first = min(layer_of[s] for s in self.selected)
        return groups[first:]

    def record(self, forward: Any, batches: list[Any]) -> Chain | None:
        """Run ``forward`` on each batch of inputs and collect the chain's quantities (float64)."""
        import torch

        first: list[tuple[_Call, list[_Call]]] | None = None
        inputs: list[list[np.ndarray]] = []
        d1s: list[list[np.ndarray]] = []
        d2s: list[list[np.ndarray]] = []
        outs: list[np.ndarray] = []
        for x in batches:
            with torch.no_grad():
                calls, out = self._calls(forward, x)
            groups = self._structure(calls, out)
            if groups is None:
                return None
            if first is None:
                first = groups
                inputs, d1s, d2s = [[] for _ in groups], [[] for _ in groups[:-1]], [[] for _ in groups[:-1]]
            elif [g[0].name for g in groups] != [g[0].name for g in first]:
                return None
            for l, (lin, act) in enumerate(groups):
                inputs[l].append(lin.inp.numpy())
                if l == len(groups) - 1:
                    continue
                a = lin.out.detach().clone().requires_grad_(True)
                with torch.enable_grad():  # phi' and phi'' of the elementwise map, elementwise
                    u = a
                    for c in act:
                        u = c.module(u)
                    if u.shape != a.shape:
                        return None
                    (g1,) = torch.autograd.grad(u.sum(), a, create_graph=True)
                    g2 = torch.autograd.grad(g1.sum(), a)[0] if g1.requires_grad else torch.zeros_like(a)
                d1s[l].append(g1.detach().numpy())
                d2s[l].append(g2.numpy())
            outs.append(out.numpy())
        if first is None:
            return None
        return Chain(layers=[g[0].name for g in first], weights=[g[0].weight.numpy().copy() for g in first],
                     has_bias=[g[0].bias is not None for g in first],
                     inputs=[np.concatenate(v) for v in inputs], d1=[np.concatenate(v) for v in d1s],
                     d2=[np.concatenate(v) for v in d2s], outputs=np.concatenate(outs))


def _augment(U: np.ndarray, bias: bool) -> np.ndarray:
    return np.concatenate([U, np.ones((U.shape[0], 1))], axis=1) if bias else U


def _kron_sym(C: np.ndarray, U: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out[a, :, b, :] += sum_i w_i C_i[a, b] U_i U_i^T`` for ``b >= a`` (one GEMM per ``a``)."""
    o = C.shape[1]
    for a in range(o):
        Y = ((C[:, a, a:] * w[:, None])[:, :, None] * U[:, None, :]).reshape(U.shape[0], -1)
        out[a, :, a:, :] += (U.T @ Y).reshape(U.shape[1], o - a, U.shape[1])


def chain_hessian(chain: Chain, g: np.ndarray, A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_i w_i Hess_theta L_i`` over the chain's parameters, in :meth:`Chain.parameter_index` layout.

    Parameters
    ----------
    chain : Chain
    g : ndarray of shape (n, c)
        ``dL_i/dz`` (only needed when the chain has more than one linear layer).
    A : ndarray of shape (n, c, c)
        ``d^2L_i/dz^2``.
    w : ndarray of shape (n,)
        Weight of each sample (e.g. ``w_i / n``).
    """
    m = len(chain.layers)
    W = chain.weights
    off = chain.offsets()
    p = int(off[-1])
    dims = [chain.widths(l) for l in range(m)]
    diag_blocks = [np.zeros((o, k, o, k)) for o, k in dims]
    H = np.zeros((p, p))
    n = A.shape[0]
    per_row = max(max(o * k for o, k in dims), max(o * o for o, _ in dims))
    if m > 1:
        per_row = max(per_row, max(dims[lp][0] * dims[lp][1] * dims[l][0] for lp in range(m) for l in range(lp)))
    rows = max(1, _CHUNK_NUMBERS // per_row)
    for s in range(0, n, rows):
        sl = slice(s, min(s + rows, n))
        U = [_augment(chain.inputs[l][sl], chain.has_bias[l]) for l in range(m)]
        delta: list[Any] = [None] * m
        Hp: list[Any] = [None] * m
        delta[-1], Hp[-1] = g[sl] if m > 1 else None, A[sl]
        for l in range(m - 2, -1, -1):
            t = delta[l + 1] @ W[l + 1]
            d1 = chain.d1[l][sl]
            delta[l] = d1 * t
            Hl = (W[l + 1].T @ Hp[l + 1] @ W[l + 1]) * d1[:, :, None] * d1[:, None, :]
            ii = np.arange(Hl.shape[1])
            Hl[:, ii, ii] += chain.d2[l][sl] * t
            Hp[l] = Hl
        wb = w[sl]
        for l in range(m):
            _kron_sym(Hp[l], U[l], wb, diag_blocks[l])
        for l in range(m - 1):
            # G = da_{l'}/da_l and P = du_{l'-1}/da_l for l' = l+1, l+2, ...
            P = np.zeros((U[l].shape[0], W[l].shape[0], W[l].shape[0]))
            ii = np.arange(W[l].shape[0])
            P[:, ii, ii] = chain.d1[l][sl]
            for lp in range(l + 1, m):
                G = W[lp] @ P                      # (rows, o_lp, o_l)
                M1 = Hp[lp] @ G
                Pt = np.concatenate([P, np.zeros((P.shape[0], 1, P.shape[2]))], axis=1) if chain.has_bias[lp] else P
                L = M1[:, :, None, :] * U[lp][:, None, :, None] + delta[lp][:, :, None, None] * Pt[:, None, :, :]
                blk = L.reshape(L.shape[0], -1).T @ (U[l] * wb[:, None])
                H[off[lp]:off[lp + 1], off[l]:off[l + 1]] += blk.reshape(off[lp + 1] - off[lp], off[l + 1] - off[l])
                if lp + 1 < m:
                    P = chain.d1[lp][sl][:, :, None] * G
    for l, T in enumerate(diag_blocks):
        o, k = dims[l]
        for a in range(o):
            T[a, :, a, :] = 0.5 * (T[a, :, a, :] + T[a, :, a, :].T)  # exactly symmetric (GEMM rounding)
            T[a + 1:, :, a, :] = T[a, :, a + 1:, :].transpose(1, 2, 0)
        H[off[l]:off[l + 1], off[l]:off[l + 1]] = T.reshape(o * k, o * k)
    for l in range(m - 1):
        for lp in range(l + 1, m):
            H[off[l]:off[l + 1], off[lp]:off[lp + 1]] = H[off[lp]:off[lp + 1], off[l]:off[l + 1]].T
    return H
