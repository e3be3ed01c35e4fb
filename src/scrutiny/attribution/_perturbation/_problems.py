"""The surrogate problems: what is sampled, how it becomes model input, how it is solved.

Each problem implements the protocol of :mod:`._engine` (``groups``, ``sizes``, ``draw``,
``evaluate``, ``solve``):

* :class:`GaussianProblem` -- C-LIME: ``x + eps`` with ``eps ~ N(0, diag(sigma^2))`` (optionally
  antithetic pairs), OLS (or kernel-weighted least squares) on ``eps``;
* :class:`TabularProblem` -- lime's tabular sampler: quartile/decile bins or categories drawn
  from the training frequencies (binary "same bin as x" features) and standardised Gaussian
  noise around x for the remaining continuous features; exponential kernel, ridge;
* :class:`ImageProblem` -- lime's image sampler: Bernoulli(1/2) superpixel masks (in
  complementary pairs, see :func:`._design.bernoulli_masks`), cosine
  distance, exponential kernel (width 0.25), ridge;
* :class:`ShapleyProblem` -- KernelSHAP: Shapley-kernel coalitions (exact, or hybrid
  enumeration + paired sampling), interventional game over a weighted background, efficiency
  constraint.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from .._base import native_dtype
from ._compose import compose_images, evaluate, fast_where, model_outputs
from ._design import (
    TAG_TABULAR,
    Coalitions,
    all_coalitions,
    bernoulli_masks,
    cosine_distance_to_ones,
    exponential_kernel,
    gaussian_noise,
    sample_coalitions,
    schedule,
    shapley_plan,
    stream,
)
from ._wls import WLSResult, solve_wls


def _spans(s: int, e: int, per: int):
    """Split the flat row range ``[s, e)`` of an (inputs, per) table into per-input pieces
    ``(input position, lo, hi)`` with ``lo, hi`` inside that input's ``per`` rows."""
    for j in range(s // per, (e - 1) // per + 1):
        yield j, max(s, j * per) - j * per, min(e, (j + 1) * per) - j * per


def _concat_units(blocks_units: list[np.ndarray]) -> np.ndarray:
    """Concatenate per-block unit ids, keeping ids of different blocks distinct (-1 stays -1)."""
    out, offset = [], 0
    for u in blocks_units:
        shifted = np.where(u >= 0, u + offset, -1)
        out.append(shifted)
        if (u >= 0).any():
            offset = int(shifted.max()) + 1
    return np.concatenate(out)


# --------------------------------------------------------------------------- C-LIME


class GaussianProblem:
    """C-LIME around each row of ``X`` (flattened to (n, D))."""

    def __init__(self, model, space, X, sigma, kernel_width, antithetic, sizes, seed, rows_per_chunk, owner,
                 row_scale=None):
        self.model, self.space, self.owner = model, space, owner
        self.shape = X.shape[1:]
        self.Xf = X.reshape(X.shape[0], -1)
        self.sigma = sigma.reshape(-1)
        # row_scale (n,): input i is perturbed by row_scale[i] * eps (C-LIME's noise_scale="range").
        # The design eps stays shared by all inputs (rows explained together equal rows explained
        # one by one); the OLS slope on row_scale[i] * eps is the slope on eps divided by row_scale[i].
        self.row_scale = np.ones(X.shape[0]) if row_scale is None else np.asarray(row_scale, dtype=np.float64)
        self.kernel_width = kernel_width
        self.antithetic = antithetic
        self._sizes = sizes
        self.seed = seed
        self.rows_per_chunk = rows_per_chunk

    def groups(self):
        return [(self.Xf.shape[1], np.arange(self.Xf.shape[0]))]

    def sizes(self, key):
        return self._sizes

    def draw(self, key, block, m):
        noise = gaussian_noise(self.seed, key, block, m, self.antithetic)
        return noise._replace(eps=noise.eps * self.sigma)

    def evaluate(self, key, idx, block):
        eps = block.eps
        m = eps.shape[0]
        Xa = self.Xf[idx]

        scale = self.row_scale[idx]

        def build(s, e):
            parts = [Xa[j] + scale[j] * eps[lo:hi] for j, lo, hi in _spans(s, e, m)]
            return np.concatenate(parts).reshape((e - s,) + self.shape)

        Y = evaluate(self.model, self.space, len(idx) * m, build, self.rows_per_chunk)
        return Y.reshape(len(idx), m, -1)

    def solve(self, key, idx, blocks, Y, target) -> WLSResult:
        eps = np.concatenate([b.eps for b in blocks])
        if self.kernel_width is None:
            w = np.ones(eps.shape[0])
        else:
            w = exponential_kernel(np.linalg.norm(eps, axis=1), self.kernel_width)
        units = _concat_units([b.units for b in blocks])
        res = solve_wls(eps, w, Y, target, intercept=True, units=units, owner=self.owner)
        scale = self.row_scale[idx]
        return res._replace(coef=res.coef / scale[:, None, None], stderr=res.stderr / scale[:, None])


# --------------------------------------------------------------------------- tabular LIME


class TabularStats(NamedTuple):
    """What tabular LIME learns from the training data (lime's scaler and discretiser)."""

    std: np.ndarray  # (d,) population std, 0 -> 1
    kinds: np.ndarray  # (d,) 0 continuous, 1 discretised, 2 categorical
    edges: list  # per feature: bin edges (discretised) or None
    values: list  # per feature: category values (categorical) or bin ids (discretised)
    cumfreq: list  # per feature: cumulative training frequencies of the categories/bins
    bin_mean: list  # per discretised feature: per-bin mean, std, lower, upper (for undiscretising)
    bin_std: list
    bin_lo: list
    bin_hi: list


def tabular_stats(train: np.ndarray, discretizer: str | None, categorical: np.ndarray) -> TabularStats:
    """Scaler, discretiser and category frequencies of lime's ``LimeTabularExplainer``."""
    n, d = train.shape
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    kinds = np.zeros(d, dtype=np.int64)
    if discretizer is not None:
        kinds[:] = 1
    kinds[categorical] = 2
    percentiles = {"quartile": [25, 50, 75], "decile": list(range(10, 100, 10))}.get(discretizer or "", [])
    edges, values, cumfreq, bm, bs, blo, bhi = ([None] * d for _ in range(7))
    for j in range(d):
        col = train[:, j]
        if kinds[j] == 2:
            vals, counts = np.unique(col, return_counts=True)
            values[j], cumfreq[j] = vals, np.cumsum(counts) / n
        elif kinds[j] == 1:
            qts = np.percentile(col, percentiles)
            bins = np.searchsorted(qts, col, side="left")
            nb = len(qts) + 1
            counts = np.bincount(bins, minlength=nb).astype(np.float64)
            edges[j], values[j], cumfreq[j] = qts, np.arange(nb), np.cumsum(counts) / n
            sums = np.bincount(bins, weights=col, minlength=nb)
            sq = np.bincount(bins, weights=col**2, minlength=nb)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(counts > 0, sums / counts, 0.0)
                var = np.where(counts > 0, sq / counts - mean**2, 0.0)
            bm[j] = mean
            bs[j] = np.sqrt(np.maximum(var, 0.0)) + 1e-11
            blo[j] = np.r_[col.min(), qts]
            bhi[j] = np.r_[qts, col.max()]
    return TabularStats(std, kinds, edges, values, cumfreq, bm, bs, blo, bhi)


def category_index(stats: TabularStats, X: np.ndarray) -> np.ndarray:
    """Bin / category index of each entry of ``X`` (n, d); -1 for an unseen category and for
    continuous features."""
    out = np.full(X.shape, -1, dtype=np.int64)
    for j in np.flatnonzero(stats.kinds == 1):
        out[:, j] = np.searchsorted(stats.edges[j], X[:, j], side="left")
    for j in np.flatnonzero(stats.kinds == 2):
        vals = stats.values[j]
        pos = np.clip(np.searchsorted(vals, X[:, j]), 0, len(vals) - 1)
        out[:, j] = np.where(vals[pos] == X[:, j], pos, -1)
    return out


class TabularBlock(NamedTuple):
    cat: np.ndarray  # (m, d) sampled bin/category index (-1 for continuous)
    values: np.ndarray  # (m, d) shared row values of discretised/categorical features
    noise: np.ndarray  # (m, d) standard normal noise of continuous features (0 elsewhere)
    first: bool  # row 0 is the explained instance


class TabularProblem:
    """lime's tabular neighbourhood (``sample_around_instance=True`` for continuous features)."""

    def __init__(self, model, space, X, stats, kernel_width, alpha, sizes, seed, rows_per_chunk, owner):
        self.model, self.space, self.owner = model, space, owner
        self.X = X
        self.stats = stats
        self.xcat = category_index(stats, X)
        self.kernel_width, self.alpha = kernel_width, alpha
        self._sizes, self.seed, self.rows_per_chunk = sizes, seed, rows_per_chunk
        self.cont = stats.kinds == 0
        self.disc = ~self.cont

    def groups(self):
        return [(self.X.shape[1], np.arange(self.X.shape[0]))]

    def sizes(self, key):
        return self._sizes

    def draw(self, key, block, m):
        st, d = self.stats, self.X.shape[1]
        rng = stream(self.seed, TAG_TABULAR, d, block)
        U = rng.random((d, m)).T
        V = rng.random((d, m)).T
        N = rng.standard_normal((d, m)).T
        cat = np.full((m, d), -1, dtype=np.int64)
        values = np.zeros((m, d))
        for j in np.flatnonzero(self.disc):
            cf = st.cumfreq[j]
            k = np.minimum(np.searchsorted(cf, U[:, j], side="right"), len(cf) - 1)
            cat[:, j] = k
            if st.kinds[j] == 2:
                values[:, j] = st.values[j][k]
            else:
                values[:, j] = _undiscretize(st, j, k, V[:, j])
        noise = np.where(self.cont, N, 0.0)
        first = block == 0
        if first and m:
            noise[0] = 0.0
        return TabularBlock(cat, values, noise, first)

    def _rows(self, x: np.ndarray, blk: TabularBlock) -> np.ndarray:
        rows = np.where(self.cont, x + blk.noise * self.stats.std, blk.values)
        if blk.first and len(rows):
            rows[0] = x
        return rows

    def evaluate(self, key, idx, blk):
        m = blk.cat.shape[0]
        a = len(idx)
        if not self.cont.any():  # neighbourhood shared by all inputs: one evaluation
            start = 1 if blk.first else 0
            shared = self._rows(self.X[idx[0]], blk)[start:]
            Ys = evaluate(self.model, self.space, len(shared), lambda s, e: shared[s:e], self.rows_per_chunk)
            Y = np.broadcast_to(Ys, (a,) + Ys.shape)
            if blk.first:
                fx = model_outputs(self.model, self.X[idx], self.space)
                Y = np.concatenate([fx[:, None, :], Y], axis=1)
            return np.ascontiguousarray(Y)
        Xa = self.X[idx]

        def build(s, e):
            parts = []
            for j, lo, hi in _spans(s, e, m):
                rows = np.where(self.cont, Xa[j] + blk.noise[lo:hi] * self.stats.std, blk.values[lo:hi])
                if blk.first and lo == 0:
                    rows[0] = Xa[j]
                parts.append(rows)
            return np.concatenate(parts)

        return evaluate(self.model, self.space, a * m, build, self.rows_per_chunk).reshape(a, m, -1)

    def design(self, idx, blocks):
        """Interpretable design of inputs ``idx``: (a, m, d) binary / standardised noise, and weights (a, m)."""
        cat = np.concatenate([b.cat for b in blocks])
        same = cat[None, :, :] == self.xcat[idx][:, None, :]  # (a, m, d) bool
        if blocks[0].first:
            same[:, 0, :] = True
        dist2 = (~same[:, :, self.disc]).sum(axis=2, dtype=np.float64)
        Z = same.astype(np.float64)
        if self.cont.any():
            noise = np.concatenate([b.noise for b in blocks])
            Z[:, :, self.cont] = noise[None][:, :, self.cont]
            dist2 += (noise**2).sum(axis=1)[None]
        return Z, exponential_kernel(np.sqrt(dist2), self.kernel_width)

    def solve(self, key, idx, blocks, Y, target) -> WLSResult:
        m = Y.shape[1]
        if not self.disc.any():  # shared design: one Cholesky for all inputs
            noise = np.concatenate([b.noise for b in blocks])
            w = exponential_kernel(np.linalg.norm(noise, axis=1), self.kernel_width)
            return solve_wls(noise, w, Y, target, alpha=self.alpha, owner=self.owner)
        d = self.X.shape[1]
        step = max(1, 2**22 // max(m * d, 1))  # bound the (inputs, samples, features) stack
        parts = []
        for s in range(0, len(idx), step):
            sl = slice(s, s + step)
            Z, w = self.design(idx[sl], blocks)
            parts.append(solve_wls(Z, w, Y[sl], target[sl], alpha=self.alpha, owner=self.owner))
        return WLSResult(*(np.concatenate([getattr(p, f) for p in parts]) for f in WLSResult._fields))


def _undiscretize(st: TabularStats, j: int, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """lime's undiscretisation: a truncated normal (bin mean and std) inside bin ``k``, by
    inversion of the uniforms ``v`` (so the draw is a fixed function of the design)."""
    from scipy import stats  # imported on first use: scipy.stats is slow to import

    mean, sd = st.bin_mean[j][k], st.bin_std[j][k]
    lo, hi = st.bin_lo[j][k], st.bin_hi[j][k]
    a, b = (lo - mean) / sd, (hi - mean) / sd
    out = mean.copy()
    ok = a < b
    if ok.any():
        out[ok] = stats.truncnorm.ppf(v[ok], a[ok], b[ok], loc=mean[ok], scale=sd[ok])
    return np.clip(out, lo, hi)


# --------------------------------------------------------------------------- image LIME


class ImageProblem:
    """lime's image neighbourhood over per-image superpixels."""

    def __init__(self, model, space, X, labels, n_seg, fills, kernel_width, alpha, sizes, seed, rows_per_chunk, owner):
        self.model, self.space, self.owner = model, space, owner
        dt = native_dtype(model)  # perturbed images are built directly in the model's dtype
        self.X, self.labels, self.n_seg, self.fills = X.astype(dt, copy=False), labels, n_seg, fills.astype(dt, copy=False)
        self.kernel_width, self.alpha = kernel_width, alpha
        self._sizes, self.seed, self.rows_per_chunk = sizes, seed, rows_per_chunk

    def groups(self):
        return [(int(S), np.flatnonzero(self.n_seg == S)) for S in np.unique(self.n_seg)]

    def sizes(self, key):
        return self._sizes

    def draw(self, key, block, m):
        return bernoulli_masks(self.seed, key, block, m, include_ones=block == 0, antithetic=True)

    def evaluate(self, key, idx, Z):
        m = Z.shape[0]

        buf = np.empty((min(self.rows_per_chunk, len(idx) * m),) + self.X.shape[1:], dtype=self.X.dtype)

        def build(s, e):  # composed in place in one reused chunk buffer
            r = 0
            for j, lo, hi in _spans(s, e, m):
                i = idx[j]
                compose_images(self.X[i], self.fills[i], self.labels[i], Z[lo:hi], out=buf[r:r + hi - lo])
                r += hi - lo
            return buf[:r]

        Y = evaluate(self.model, self.space, len(idx) * m, build, self.rows_per_chunk)
        return Y.reshape(len(idx), m, -1)

    def solve(self, key, idx, blocks, Y, target) -> WLSResult:
        Z = np.concatenate(blocks)
        w = exponential_kernel(cosine_distance_to_ones(Z), self.kernel_width)
        return solve_wls(Z, w, Y, target, alpha=self.alpha, owner=self.owner)


# --------------------------------------------------------------------------- KernelSHAP


class ShapleyBlock(NamedTuple):
    coalitions: Coalitions
    sampled: np.ndarray  # bool (m,): sampled rows share the remaining kernel mass


class ShapleyProblem:
    """KernelSHAP over the varying features of each input (dummy features get 0)."""

    def __init__(self, model, space, X, background, bg_weights, v0, fx, n_samples, seed, rows_per_chunk, owner,
                 labels=None):
        self.model, self.space, self.owner = model, space, owner
        self.shape = X.shape[1:]
        dt = native_dtype(model)  # coalition rows are built directly in the model's dtype
        self.Xf = X.reshape(X.shape[0], -1).astype(dt, copy=False)
        self.BG = background.reshape(background.shape[0], -1).astype(dt, copy=False)
        self.bw = bg_weights
        self.v0, self.fx = v0, fx
        self.n_samples = n_samples
        self.seed = seed
        B = self.BG.shape[0]
        self.rows_per_chunk = max(B, (rows_per_chunk // B) * B)
        n, D = self.Xf.shape
        feat_varying = (self.BG[None, :, :] != self.Xf[:, None, :]).any(axis=1)  # (n, D)
        # players are groups of features (``labels`` (n, D), numbered 0..G_i-1 per input) or,
        # without labels, the features themselves; a group varies if any of its features does
        if labels is None:
            self.labels = None
            self.varying = feat_varying
        else:
            self.labels = np.asarray(labels, dtype=np.int64).reshape(n, D)
            G = int(self.labels.max()) + 1 if D else 0
            self.varying = np.zeros((n, G), dtype=bool)
            for i in range(n):
                self.varying[i, np.unique(self.labels[i][feat_varying[i]])] = True
        self.plans: dict[int, Any] = {}

    def groups(self):
        keys: dict[bytes, list[int]] = {}
        for i, row in enumerate(self.varying):
            lab = b"" if self.labels is None else self.labels[i].tobytes()
            keys.setdefault(row.tobytes() + b"|" + lab, []).append(i)
        out = []
        for idx in keys.values():
            players = np.flatnonzero(self.varying[idx[0]])
            if players.size >= 2:
                out.append(((players.size, players.tobytes(), int(idx[0])), np.array(idx)))
        return out

    def players(self, key) -> np.ndarray:
        return np.frombuffer(key[1], dtype=np.int64)

    def columns(self, key) -> np.ndarray:
        """For each of the D features, its player's column in a coalition (``M``: not a player,
        always taken from x, which equals every background row there)."""
        M, P = key[0], self.players(key)
        D = self.Xf.shape[1]
        if self.labels is None:
            col = np.full(D, M, dtype=np.int64)
            col[P] = np.arange(M)
            return col
        pos = np.full(self.varying.shape[1], M, dtype=np.int64)
        pos[P] = np.arange(M)
        return pos[self.labels[key[2]]]

    def sizes(self, key):
        M = key[0]
        if self.n_samples == "auto":
            n0 = 2 * M + 2048
            if 2**M - 2 <= n0:
                return [2**M - 2]
            return schedule("auto", n0)
        return [min(int(self.n_samples), 2**M - 2)]

    def plan(self, M):
        if M not in self.plans:
            self.plans[M] = shapley_plan(M, self.sizes((M, b""))[0])
        return self.plans[M]

    def draw(self, key, block, m):
        M = key[0]
        plan = self.plan(M)
        if plan.exact:
            co = all_coalitions(M)
            return ShapleyBlock(co, np.zeros(len(co.Z), dtype=bool))
        if block == 0:
            enum = plan.enumerated
            samp = sample_coalitions(self.seed, M, block, m - len(enum.Z), plan, 0)
            co = Coalitions(
                np.concatenate([enum.Z, samp.Z]),
                np.concatenate([enum.weights, samp.weights]),
                np.concatenate([enum.units, samp.units]),
            )
            return ShapleyBlock(co, np.r_[np.zeros(len(enum.Z), bool), np.ones(len(samp.Z), bool)])
        samp = sample_coalitions(self.seed, M, block, m, plan, 0)
        return ShapleyBlock(samp, np.ones(len(samp.Z), dtype=bool))

    def evaluate(self, key, idx, blk):
        Z = blk.coalitions.Z
        m, B = Z.shape[0], self.BG.shape[0]
        Zx = np.concatenate([Z.astype(bool), np.ones((m, 1), dtype=bool)], axis=1)
        mask = Zx[:, self.columns(key)]  # (m, D)
        Xa = self.Xf[idx]
        total = len(idx) * m * B
        D = self.Xf.shape[1]
        buf = np.empty((min(total, self.rows_per_chunk), D), dtype=self.Xf.dtype)  # reused for every chunk
        out = []
        for s in range(0, total, self.rows_per_chunk):  # chunks hold whole coalitions (multiples of B)
            e = min(total, s + self.rows_per_chunk)
            r = 0
            for j, lo, hi in _spans(s // B, e // B, m):
                k = (hi - lo) * B
                fast_where(mask[lo:hi, None, :], Xa[j][None, None, :], self.BG[None, :, :],
                           out=buf[r:r + k].reshape(hi - lo, B, D))
                r += k
            pred = model_outputs(self.model, buf[:r].reshape((r,) + self.shape), self.space)
            K = pred.shape[1]  # background average as one BLAS product: (r/B, B K) @ (B K, K)
            out.append(pred.reshape(-1, B * K) @ np.kron(self.bw[:, None], np.eye(K)))
        v = np.concatenate(out).reshape(len(idx), m, -1)
        return v - self.v0

    def solve(self, key, idx, blocks, Y, target) -> WLSResult:
        M = key[0]
        plan = self.plan(M)
        Z = np.concatenate([b.coalitions.Z for b in blocks])
        w = np.concatenate([b.coalitions.weights for b in blocks])
        sampled = np.concatenate([b.sampled for b in blocks])
        if sampled.any():
            w = w.copy()
            w[sampled] = plan.remaining_mass * w[sampled] / w[sampled].sum()  # weights: times drawn
        units = _concat_units([b.coalitions.units for b in blocks])
        delta = self.fx[idx] - self.v0
        return solve_wls(Z, w, Y, target, intercept=False, delta=delta, units=units, owner=self.owner)
