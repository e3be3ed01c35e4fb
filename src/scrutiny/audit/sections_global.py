"""Audit sections beyond single rows: DMM-MEN, training-data attribution, generalisation, glass boxes.

The contract is :mod:`scrutiny.audit.sections`'. Decisions:

* NNK runs on the model's penultimate features when it has them (torch) and on standardised
  inputs otherwise; which one is recorded as ``nnk_space``.
* ``loo_gap`` is the DeepNNK generalisation-gap estimate: NNK leave-one-out error on the
  training features minus the model's training error (Shekkizhar & Ortega 2020).
* Mislabel candidates: :func:`scrutiny.data_attribution.detect_mislabeled` scores rankings
  against *known* flips, which an audit does not have, so the audit ranks training points whose
  NNK leave-one-out prediction contradicts their label by their LOO residual (plus the
  self-influence ranking for torch models).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .sections import AuditContext, SectionOutput, Skip, _save, class_names, feature_names

__all__ = ["dmm_men", "training_data", "generalisation", "glassbox"]


def _subsample(n: int, m: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, m, replace=False)) if n > m else np.arange(n)


def _need_train(ctx: AuditContext) -> Any:
    if ctx.train is None:
        raise Skip("needs the training data; give --train.")
    return ctx.train


# ---------------------------------------------------------------- DMM-MEN
def dmm_men(ctx: AuditContext) -> SectionOutput:
    from ..surrogate import DMMMEN

    cfg, ds = ctx.config["dmm_men"], ctx.data
    if ds.n_classes is None:
        raise Skip("DMM-MEN explains the class probabilities of a classifier; the labels are not classes.")
    pool = ctx.train if ctx.train is not None else ds
    counts = np.bincount(pool.y, minlength=ds.n_classes)
    classes = [int(c) for c in np.argsort(-counts, kind="stable")[: int(cfg["max_classes"])] if counts[c] >= 10]
    if not classes:
        raise Skip("every class has fewer than 10 rows; DMM-MEN needs more.")
    names, cls_names = feature_names(pool), class_names(pool, max(ds.n_classes, max(classes) + 1))
    files: list = []
    per_class, params = {}, {}
    bar = ctx.progress(len(classes), "DMM-MEN")
    for c in classes:
        rows = np.flatnonzero(pool.y == c)
        rows = rows[_subsample(len(rows), int(cfg["max_rows"]), ctx.seed + c)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = DMMMEN.from_model(ctx.model.adapter, pool.X[rows], c, n_features=min(int(cfg["n_features"]), pool.n_features),
                                    n_iter=int(cfg["n_iter"]), n_burnin=int(cfg["n_burnin"]), n_chains=int(cfg["n_chains"]),
                                    random_state=ctx.seed + c)
        insights = est.explain_global(k=min(int(cfg["k"]), pool.n_features))
        comps = []
        for j, ins in enumerate(insights[:3]):
            _save(ctx, ins, f"dmm_men_class{c}_component{j}.npz", files)
            comps.append({"component": ins.component, "weight": ins.weight, "n_samples": ins.n_samples,
                          "features": [names[int(f)] for f in ins.features], "feature_index": ins.features.tolist(),
                          "coef": ins.coef.tolist(), "ci": ins.coef_ci.tolist(), "significant": ins.significant.tolist()})
        rhat = {k: float(np.nanmax(v)) for k, v in est.rhat_.items() if np.size(v)}
        per_class[cls_names[c]] = {"class": c, "rows": int(len(rows)), "converged": bool(est.converged_),
                                   "max_rhat": max(rhat.values()) if rhat else None, "rhat": rhat,
                                   "components": comps, "warnings": [str(w.message)[:300] for w in caught][:3],
                                   # trace_ holds one dict per chain: chains x sweeps
                                   "trace_loglik": np.asarray([t["loglik"] for t in est.trace_], dtype=float).tolist()}
        params[cls_names[c]] = est.get_params()
        bar.update()
    bar.close()
    return SectionOutput({"classes": per_class, "image_shape": list(ds.image_shape) if ds.image_shape else None},
                         {k: {p: v for p, v in ps.items() if isinstance(v, (int, float, str, bool, type(None)))}
                          for k, ps in params.items()}, files)


# ---------------------------------------------------------------- features for NNK
def nnk_features(ctx: AuditContext, X: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, str]:
    """Penultimate features of a torch model, else inputs standardised by ``reference``'s statistics."""
    if ctx.model.kind == "torch":
        try:
            return ctx.model.adapter.features(X), "penultimate features"
        except Exception:  # TorchScript/exported modules may not expose a penultimate layer
            pass
    flat, ref = X.reshape(len(X), -1), reference.reshape(len(reference), -1)
    sd = ref.std(axis=0)
    return (flat - ref.mean(axis=0)) / np.where(sd > 0, sd, 1.0), "standardised inputs"


# ---------------------------------------------------------------- training-data attribution
def training_data(ctx: AuditContext) -> SectionOutput:
    from ..nnk import NNK

    train, cfg, ds = _need_train(ctx), ctx.config["training_data"], ctx.data
    tr = _subsample(len(train.y), int(cfg["max_train"]), ctx.seed)
    Xtr, ytr = train.X[tr], train.y[tr]
    pred = ctx.model.adapter.predict(ds.X).argmax(axis=1)
    wrong = np.flatnonzero(pred != ds.y)
    test = np.concatenate([wrong[:1], np.setdiff1d(np.arange(len(ds.y)), wrong[:1])])[: int(cfg["n_test"])]
    Xte, k = ds.X[test], int(cfg["top_k"])
    files: list = []
    numbers: dict = {"test_rows": test.tolist(), "train_rows": tr.tolist(), "methods": {}, "unavailable": {}}
    params: dict = {}
    if ctx.model.kind == "torch":
        from ..data_attribution import InfluenceFunctions, RepresenterPoints

        makers = {"influence": lambda: InfluenceFunctions(ctx.model.obj, params="last", damping=0.01,
                                                          check_optimum="ignore"),
                  "representer": lambda: RepresenterPoints(ctx.model.obj)}
        for name, make in makers.items():
            try:  # in this process on every backend: scrutiny.distributed.attribute refits on each worker,
                # and its influence scores match these only to float rounding (seen: 7e-17), not bit for bit
                est = make().fit(Xtr, ytr)
                att = est.attribute(Xte, target=pred[test])
            except Exception as exc:  # e.g. a scripted module without a penultimate layer
                numbers["unavailable"][name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                continue
            _save(ctx, att, f"{name}.npz", files)
            numbers["methods"][name] = {"proponents": att.proponents(k).tolist(), "opponents": att.opponents(k).tolist(),
                                        "proponent_scores": np.take_along_axis(att.scores, att.proponents(k), 1).tolist(),
                                        "opponent_scores": np.take_along_axis(att.scores, att.opponents(k), 1).tolist()}
            params[name] = est.get_params() if hasattr(est, "get_params") else {}
    else:
        reason = f"needs a differentiable torch model; the {ctx.model.format} model is not one."
        numbers["unavailable"] = {"influence": reason, "representer": reason}
    Ftr, space = nnk_features(ctx, Xtr, Xtr)
    Fte, _ = nnk_features(ctx, Xte, Xtr)
    nnk = NNK(k=min(int(cfg["nnk_k"]), len(tr) - 1)).fit(Ftr, ytr)
    att = nnk.attribute(Fte)
    _save(ctx, att, "nnk_neighbours.npz", files)
    top = att.top_k(k, "proponents")
    weights = np.take_along_axis(att.scores, top, 1)
    numbers["methods"]["nnk"] = {"proponents": top.tolist(), "proponent_scores": weights.tolist(),
                                 "neighbour_labels": ytr[top].tolist()}
    numbers["nnk_space"] = space
    # the training rows the report shows (gallery / NNK panels), so `scrutiny report` needs no data files
    shown = sorted({int(j) for rec in numbers["methods"].values() for key in ("proponents", "opponents")
                    for row in rec.get(key, []) for j in row})
    np.savez_compressed(ctx.out / "training_examples.npz", positions=np.array(shown, dtype=np.int64),
                        train_rows=tr[shown], X=Xtr[shown], y=ytr[shown], test_X=Xte)
    files.append("training_examples.npz")
    numbers["true"], numbers["predicted"] = ds.y[test].tolist(), pred[test].tolist()
    params["nnk"] = nnk.get_params() | {"model": None}
    return SectionOutput(numbers, params, files)


# ---------------------------------------------------------------- generalisation
def generalisation(ctx: AuditContext) -> SectionOutput:
    from ..nnk import NNK
    from ..nnk.generalization import out_of_support

    train, cfg, ds = _need_train(ctx), ctx.config["generalisation"], ctx.data
    if train.n_classes is None:
        raise Skip("the NNK leave-one-out error needs class labels.")
    tr = _subsample(len(train.y), int(cfg["max_train"]), ctx.seed)
    Xtr, ytr = train.X[tr], train.y[tr]
    Ftr, space = nnk_features(ctx, Xtr, Xtr)
    Fte, _ = nnk_features(ctx, ds.X, Xtr)
    nnk = NNK(k=min(int(cfg["nnk_k"]), len(tr) - 1)).fit(Ftr, ytr)
    loo = nnk.loo_error()
    files: list = []
    _save(ctx, loo, "nnk_loo.npz", files)
    train_err = float((ctx.model.adapter.predict(Xtr).argmax(axis=1) != ytr).mean())
    pred_te = ctx.model.adapter.predict(ds.X).argmax(axis=1)
    test_err = float((pred_te != ds.y).mean())
    # mislabel candidates: LOO prediction disagrees with the label, largest residual first
    loo_label = np.asarray(loo.classes)[loo.nnk_pred]
    disagree = np.flatnonzero(loo_label != ytr)
    cand = disagree[np.argsort(-loo.residual[disagree], kind="stable")][: int(cfg["n_candidates"])]
    oos = out_of_support(nnk, Fte, pred_te)
    _save(ctx, oos, "out_of_support.npz", files)
    pv = np.asarray(oos.residual_pvalue if oos.residual_pvalue is not None else np.ones(len(ds.y)))
    flagged = np.argsort(pv, kind="stable")[: int(cfg["n_candidates"])]
    numbers = {"nnk_space": space, "nnk_loo_error": float(loo.nnk_error), "knn_loo_error": float(loo.knn_error),
               "train_error": train_err, "test_error": test_err, "loo_gap": float(loo.nnk_error) - train_err,
               "loo_error_per_class": [None if not np.isfinite(v) else float(v) for v in loo.nnk_error_per_class],
               "mislabel_candidates": [{"train_row": int(tr[i]), "label": int(ytr[i]), "nnk_label": int(loo_label[i]),
                                        "residual": float(loo.residual[i])} for i in cand],
               "out_of_support": [{"row": int(i), "p_value": float(pv[i]), "residual": float(oos.residual[i]),
                                   "predicted": int(pred_te[i])} for i in flagged],
               "n_out_of_support": int((pv < 0.05).sum()), "n_train_used": int(len(tr))}
    return SectionOutput(numbers, {"nnk": nnk.get_params() | {"model": None}}, files)


# ---------------------------------------------------------------- glass boxes
def glassbox(ctx: AuditContext) -> SectionOutput:
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..glassbox import RiskScoreClassifier, RuleListClassifier, compare_models
    from ..glassbox.compare import Binarized

    pool = ctx.train if ctx.train is not None else ctx.data
    if pool.image_shape is not None:
        raise Skip("rule lists and score cards are for tabular data; the data are images.")
    if pool.n_classes != 2:
        raise Skip(f"rule lists and score cards need two classes; the data have {pool.n_classes}.")
    cv, limit = int(ctx.config["glassbox"]["cv"]), float(ctx.config["glassbox"]["time_limit"])
    names = feature_names(pool)
    models = {"rule list": (Binarized(RuleListClassifier(max_card=1, time_limit=limit, feature_names=None)), "glass box"),
              "risk score": (Binarized(RiskScoreClassifier(5, time_limit=limit)), "glass box"),
              "logistic regression": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), "black box")}
    if ctx.model.kind == "sklearn":
        models["audited model"] = (clone(ctx.model.obj), "black box")
    cmp = compare_models(pool.X, pool.y, models, cv=cv, random_state=ctx.seed)
    files: list = []
    _save(ctx, cmp, "glassbox_comparison.npz", files)
    # the interpretable models themselves, fitted on all rows, shown as text next to the numbers
    from ..glassbox.binarize import ThresholdBinarizer

    binz = ThresholdBinarizer().fit(pool.X)
    Xb = binz.transform(pool.X)
    bnames = [str(n) for n in binz.get_feature_names_out(names)] if hasattr(binz, "get_feature_names_out") else None
    rules = RuleListClassifier(max_card=1, time_limit=limit, feature_names=bnames).fit(Xb, pool.y)
    card = RiskScoreClassifier(5, time_limit=limit, feature_names=bnames).fit(Xb, pool.y).explain_global()
    numbers = {"models": list(cmp.models), "kinds": list(cmp.kinds), "accuracy": cmp.accuracy.tolist(),
               "accuracy_ci": cmp.accuracy_ci.tolist(), "auc": cmp.auc.tolist(), "auc_ci": cmp.auc_ci.tolist(),
               "size": cmp.size.tolist(), "reference": cmp.reference,
               "rule_list": [ln for ln in str(rules).splitlines() if not ln.startswith("#")],
               "score_card": {"features": [str(f) for f in card.features], "points": np.asarray(card.points).tolist(),
                              "intercept": float(card.intercept)}}
    return SectionOutput(numbers, {"cv": cv, "models": {k: type(v[0]).__name__ for k, v in models.items()}}, files)
