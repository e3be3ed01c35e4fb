"""Train every reference model of ``scrutiny.zoo`` and check the accuracy targets.

For each (model, dataset) pair this trains the model with its fixed recipe
(``scrutiny.zoo.RECIPES``), evaluates it on the test split and prints a table with the
training time and test accuracy against the target (CNN: > 97% on digits, > 98% on the
20k-image MNIST subset, > 88% on Fashion-MNIST). Datasets whose files are missing are
skipped with a message. The weights are written to the zoo cache, so later calls of
``reference_model`` load them instead of retraining.

Usage::

    python benchmarks/zoo.py                                  # everything
    python benchmarks/zoo.py --models cnn --datasets digits mnist --json zoo.json
    python benchmarks/zoo.py --data-dir /path/to/data --threads 2

The exit status is 1 when a target is missed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from scrutiny.zoo import RECIPES, TARGETS, reference_model

MODELS = ("logistic", "mlp", "cnn")
DATASETS = ("digits", "mnist", "fashion-mnist")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder holding mnist/ and fashion-mnist/ IDX files (default: %(default)s)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="weight cache (default: $SCRUTINY_CACHE_DIR or ~/.cache/scrutiny)")
    parser.add_argument("--reuse-cache", action="store_true",
                        help="load cached weights instead of retraining (times are then those of the cached run)")
    parser.add_argument("--seed", type=int, default=0, help="random_state of every model (default: 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for this run (default: torch's default)")
    parser.add_argument("--progress", action="store_true", help="show tqdm progress bars")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    return parser.parse_args(argv)


def _fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # a script may set global state; the library never does
    header = ["model", "dataset", "n_train", "n_test", "epochs", "train s", "test acc", "target", "status"]
    rows: list[dict] = []
    skipped: list[dict] = []
    start = time.perf_counter()
    for dataset in args.datasets:
        for name in args.models:
            try:
                _, info = reference_model(
                    name, dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, random_state=args.seed,
                    progress=args.progress, retrain=not args.reuse_cache,
                )
            except FileNotFoundError as exc:
                print(f"skipping {dataset}: {exc}", file=sys.stderr)
                skipped.append({"dataset": dataset, "reason": str(exc)})
                break
            target = TARGETS.get((name, dataset))
            acc = info["test_accuracy"]
            row = {
                "model": name,
                "dataset": dataset,
                "n_train": info["n_train"],
                "n_test": info["n_test"],
                "epochs": info["recipe"]["epochs"],
                "train_seconds": round(info["train_seconds"], 2),
                "test_accuracy": acc,
                "train_accuracy": info["train_accuracy"],
                "target": target,
                "passed": None if target is None else bool(acc > target),
                "from_cache": info["from_cache"],
                "recipe": info["recipe"],
                "recipe_key": info["recipe_key"],
                "cache_path": info["cache_path"],
            }
            rows.append(row)
            print(f"{name:8s} {dataset:13s} test accuracy {acc:.4f}  ({info['train_seconds']:.1f} s"
                  f"{', cached' if info['from_cache'] else ''})", file=sys.stderr, flush=True)

    cells = [[r["model"], r["dataset"], str(r["n_train"]), str(r["n_test"]), str(r["epochs"]),
              f"{r['train_seconds']:.1f}", f"{r['test_accuracy']:.4f}",
              "-" if r["target"] is None else f"> {r['target']:.2f}",
              "-" if r["passed"] is None else ("pass" if r["passed"] else "FAIL")] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    print(_fmt_row(header, widths))
    print(_fmt_row(["-" * w for w in widths], widths))
    for c in cells:
        print(_fmt_row(c, widths))
    total = time.perf_counter() - start
    print(f"\n{len(rows)} model(s) in {total:.0f} s on {os.cpu_count()} CPU(s), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s).")

    if args.json is not None:
        payload = {
            "benchmark": "zoo",
            "results": rows,
            "skipped": skipped,
            "recipes": {f"{m}/{d}": vars(r) | {"model_kwargs": dict(r.model_kwargs)} for (m, d), r in RECIPES.items()},
            "environment": {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "total_seconds": round(total, 1),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 1 if any(r["passed"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
