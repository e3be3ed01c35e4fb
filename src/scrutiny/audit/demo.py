"""``scrutiny demo``: two audits on data that ship with the installed packages.

1. The reference CNN on scikit-learn's 8x8 digits (or, with ``--data-dir``, the MNIST CNN on
   MNIST), saved as a ``state_dict`` and audited through ``--arch cnn``.
2. An MLP on the bundled breast-cancer data (standardised with the training statistics), saved
   with skops and audited from CSV files.

Both go through the same loaders as ``scrutiny audit`` (the inputs are written to
``OUT/<name>/inputs``), so the demo exercises the real command-line path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["run_demo", "write_tabular_inputs"]


def write_tabular_inputs(folder: Path, seed: int) -> tuple[Path, Path, Path]:
    """Train an MLP on breast cancer; write train.csv, test.csv and model.skops to ``folder``."""
    import skops.io as sio
    from sklearn.neural_network import MLPClassifier

    from ..data import load_breast_cancer, train_test_split

    folder.mkdir(parents=True, exist_ok=True)
    ds = load_breast_cancer()
    tr, te = train_test_split(ds, random_state=seed)
    mu, sd = tr.X.mean(axis=0), tr.X.std(axis=0)
    header = ",".join([n.replace(",", " ") for n in ds.feature_names] + ["label"])
    for name, part in (("train", tr), ("test", te)):
        np.savetxt(folder / f"{name}.csv", np.column_stack([(part.X - mu) / sd, part.y]), delimiter=",",
                   header=header, comments="", fmt="%.8g")
    est = MLPClassifier((16,), max_iter=1000, random_state=seed).fit((tr.X - mu) / sd, tr.y)
    sio.dump(est, folder / "model.skops")
    return folder / "model.skops", folder / "train.csv", folder / "test.csv"


def _image_inputs(folder: Path, args: Any) -> tuple[Path, Path, Path, str]:
    import torch

    from ..zoo import reference_model

    folder.mkdir(parents=True, exist_ok=True)
    dataset = "mnist" if args.data_dir else "digits"
    net, info = reference_model("cnn", dataset, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                random_state=args.seed, progress=not args.quiet, retrain=args.retrain)
    torch.save(net.state_dict(), folder / "cnn_state_dict.pt")
    for name in ("train", "test"):
        part = info[name]
        np.savez(folder / f"{name}.npz", X=part.X, y=part.y)
    return folder / "cnn_state_dict.pt", folder / "train.npz", folder / "test.npz", dataset


def run_demo(args: Any, say: Callable[..., None]) -> list[dict]:
    """Run both audits into ``args.output_dir``; returns their trails."""
    from .config import load_config
    from .loaders import check_compatible, load_data, load_model
    from .runner import run_audit

    root = Path(args.output_dir)
    config = load_config(None, args.budget)
    trails = []
    img_model, img_train, img_test, dataset = _image_inputs(root / "images" / "inputs", args)
    jobs = [("images", img_model, img_train, img_test, "cnn", f"reference CNN on {dataset}"),
            ("tabular", *write_tabular_inputs(root / "tabular" / "inputs", args.seed), None, "MLP on breast cancer")]
    for name, model_path, train_path, test_path, arch, what in jobs:
        say(f"Auditing the {what} ...")
        data = load_data(test_path)
        train = load_data(train_path, what="--train")
        model = load_model(model_path, arch=arch, data=data.dataset)
        check_compatible(model, data.dataset)
        argv = ["scrutiny", "audit", "--model", str(model_path), "--data", str(test_path), "--train", str(train_path),
                "--budget", args.budget, "--seed", str(args.seed)] + (["--arch", arch] if arch else [])
        trail = run_audit(model, data, root / name, train=train, config=config, seed=args.seed, jobs=args.jobs,
                          quiet=args.quiet, strict=args.strict, argv=argv)
        for s in trail["sections"]:
            say(f"  {s['name']:<15} {s['status']:<8} {s['seconds']:7.1f} s  {s['reason'] or s['error'] or ''}"[:200])
        say(f"Wrote {root / name / 'report.html'}")
        trails.append(trail)
    return trails
