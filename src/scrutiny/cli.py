"""The ``scrutiny`` command line.

``main(argv) -> int`` is importable and testable in-process; the console script calls it.

Commands
--------
scrutiny demo [--output-dir DIR] [--n-images N] [--cache-dir DIR] [--retrain] [--seed S] [--quiet]
    Train (or load the cached) reference CNN on scikit-learn's 8x8 digits, explain a few
    test images with Saliency, Integrated Gradients, SmoothGrad, Occlusion and image LIME,
    and write the explanations (.npz), a plot and summary.json to DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .exceptions import ScrutinyError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scrutiny",
        description="Explain and audit machine-learning models (PyTorch and scikit-learn).",
    )
    parser.add_argument("--version", action="version", version=f"scrutiny {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a reference CNN on the bundled digits and explain a few test images",
        description="Train (or load from the cache) the reference CNN on scikit-learn's 8x8 digits, "
        "explain a few test images with every method available, and write the results (.npz), "
        "plots (.png) and a summary.json to the output folder.",
    )
    demo.add_argument("--output-dir", "-o", default="scrutiny-demo", help="folder for the results (default: %(default)s)")
    demo.add_argument("--n-images", type=int, default=8, help="number of test images to explain (default: %(default)s)")
    demo.add_argument("--cache-dir", default=None, help="weight cache (default: $SCRUTINY_CACHE_DIR or ~/.cache/scrutiny)")
    demo.add_argument("--retrain", action="store_true", help="train even if cached weights exist")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the model and the methods (default: %(default)s)")
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")
    demo.set_defaults(func=_demo)
    return parser


def _pick_one_per_class(y, n):
    """Indices of the first test image of each class, then the next ones, up to n."""
    import numpy as np

    firsts = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)]
    rest = [i for i in range(len(y)) if i not in set(firsts)]
    return (firsts + rest)[:n]


def _json_default(obj):
    """json.dumps fallback: small arrays as lists, large ones by shape."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"<array of shape {list(obj.shape)}>"
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return repr(obj)


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from .attribution import LIME, IntegratedGradients, Occlusion, Saliency, SmoothGrad
    from .models import as_model
    from .viz import plot_image_attributions
    from .zoo import reference_model

    if args.n_images < 1:
        raise ScrutinyError(f"--n-images must be at least 1; got {args.n_images}.")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    net, info = reference_model(
        "cnn", "digits", cache_dir=args.cache_dir, random_state=args.seed, progress=not args.quiet, retrain=args.retrain
    )
    source = "loaded from cache" if info["from_cache"] else f"trained in {info['train_seconds']:.1f} s"
    say(f"Reference CNN on digits ({source}): test accuracy {info['test_accuracy']:.4f} on {info['n_test']} images")

    test = info["test"]
    idx = _pick_one_per_class(test.y, min(args.n_images, len(test.y)))
    X = test.X[idx]
    model = as_model(net, output="logit")
    seed = args.seed
    methods = {
        "saliency": lambda: Saliency(model),
        "integrated_gradients": lambda: IntegratedGradients(model, n_steps=50),
        "smoothgrad": lambda: SmoothGrad(model, n_samples=50, noise_level=0.15, random_state=seed),
        "occlusion": lambda: Occlusion(model, window=(1, 2, 2), stride=(1, 1, 1), baseline=0.0),
        "lime": lambda: LIME(model, mode="image", segments="grid", segment_params={"cell": (2, 2)},
                             n_samples=1000, random_state=seed),
    }
    explanations, timings = {}, {}
    steps = tqdm(methods.items(), desc="explain", unit="method", disable=args.quiet, leave=False)
    for name, make in steps:
        steps.set_postfix_str(name)
        start = time.perf_counter()
        explanations[name] = make().explain(X)
        timings[name] = round(time.perf_counter() - start, 3)
    predicted = explanations["saliency"].target

    files = {}
    for name, exp in explanations.items():
        files[f"{name}.npz"] = str(exp.save(out / f"{name}.npz"))
    fig_path = out / "attributions.png"
    plot_image_attributions(list(explanations.values()), fig_path, max_samples=len(idx), titles=list(explanations))
    files["attributions.png"] = str(fig_path)

    summary = {
        "scrutiny_version": __version__,
        "model": {k: info[k] for k in ("name", "dataset", "test_accuracy", "n_train", "n_test", "from_cache", "train_seconds")},
        "explained": {"test_indices": idx, "true": test.y[idx].tolist(), "predicted": predicted.tolist()},
        "methods": {name: {"seconds": timings[name], "params": explanations[name].params} for name in explanations},
        "integrated_gradients_max_relative_gap": float(
            np.max(np.abs(explanations["integrated_gradients"].extras["relative_gap"]))
        ),
        "files": files,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    for name in explanations:
        say(f"  {name:<22} {timings[name]:7.3f} s")
    say(f"Explained {len(idx)} test images with {len(explanations)} methods.")
    say(f"Wrote {len(files) + 1} files to {out.resolve()}:")
    for name in sorted(files) + ["summary.json"]:
        say(f"  {name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ScrutinyError as exc:
        print(f"scrutiny {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
