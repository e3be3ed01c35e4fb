"""The ``scrutiny`` command line.

``main(argv) -> int`` is importable and testable in-process; the console script calls it.
Exit codes: 0 ok, 1 a ``--fail-on`` check failed, 2 a usage or input error (one line on stderr
that says what to do).

Commands
--------
scrutiny audit --model M --data D [--train T] [--config audit.toml] [--budget B] -o OUT
              [--backend {serial,process,dask}] [--scheduler ADDRESS] [--workers N]
    Audit a saved model on saved data: OUT/report.html, OUT/audit.json and one .npz per result.
    The local explanations, their deletion curves and sanity checks run on the backend
    (--scheduler: a running Dask scheduler); the results are the same on every backend.
scrutiny report OUT
    Rebuild OUT/report.html from OUT/audit.json and the saved .npz results.
scrutiny diff OLD/audit.json NEW/audit.json [--json]
    What moved between two audits (predictions, attributions, influential examples, metrics).
scrutiny demo [-o OUT] [--data-dir MNIST_DIR]
    Audit the reference CNN on the bundled digits (or MNIST) and an MLP on the bundled
    breast-cancer data, with every capability; prints its run time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .exceptions import ScrutinyError

__all__ = ["main", "build_parser"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", default="standard", choices=("fast", "standard", "thorough"),
                   help="sample counts: fast (CI), standard (default), thorough")
    p.add_argument("--seed", type=int, default=0, help="seed of every random method (default: %(default)s)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="sections run in parallel (default: %(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")
    p.add_argument("--strict", action="store_true", help="stop at the first failing section instead of recording it")
    p.add_argument("--fail-on", default=None, metavar="CHECKS",
                   help='exit 1 when a check fails, e.g. "sanity,faithfulness<0.6,loo_gap>0.05"')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scrutiny",
                                     description="Explain and audit machine-learning models (PyTorch and scikit-learn).")
    parser.add_argument("--version", action="version", version=f"scrutiny {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    audit = sub.add_parser("audit", help="audit a saved model on saved data into one offline HTML report",
                           description="Load a model and data, run every capability that applies, and write "
                           "OUT/report.html, OUT/audit.json and each result as .npz.")
    audit.add_argument("--model", "-m", required=True,
                       help="TorchScript (.pt), torch.export (.pt2), state_dict (+--arch), skops (.skops) or ONNX (.onnx)")
    audit.add_argument("--arch", default=None, help="zoo architecture of a state_dict: logistic, mlp or cnn")
    audit.add_argument("--data", "-d", required=True,
                       help="rows to audit: .csv/.parquet (label column), .npz (X, y), IDX (+--labels) or a PNG folder")
    audit.add_argument("--train", default=None, help="training rows (same formats), for training-data sections")
    audit.add_argument("--label", default=None, help="label column of CSV/Parquet (default: 'label' or the last)")
    audit.add_argument("--labels", default=None, help="IDX label file for an IDX --data")
    audit.add_argument("--train-labels", default=None, help="IDX label file for an IDX --train")
    audit.add_argument("--config", "-c", default=None, help="audit.toml (sections, rows, methods, sample counts)")
    audit.add_argument("--output-dir", "-o", default="scrutiny-audit", help="output folder (default: %(default)s)")
    audit.add_argument("--backend", default=None, choices=("serial", "process", "dask"),
                       help="where the per-row work runs (default: audit.toml's distributed.backend, else serial); "
                       "never changes a result")
    audit.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="with --backend dask: connect to this Dask scheduler (tcp://host:8786) instead of "
                       "starting a local cluster")
    audit.add_argument("--workers", type=int, default=None, metavar="N",
                       help="workers of the process pool or local Dask cluster (default: one per core)")
    _common(audit)
    audit.set_defaults(func=_audit)

    report = sub.add_parser("report", help="rebuild OUT/report.html from OUT/audit.json and the saved results")
    report.add_argument("output_dir", help="the audit folder")
    report.add_argument("--quiet", "-q", action="store_true")
    report.set_defaults(func=_report)

    diff = sub.add_parser("diff", help="compare two audits of model versions")
    diff.add_argument("old", help="OLD/audit.json (or its folder)")
    diff.add_argument("new", help="NEW/audit.json (or its folder)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(func=_diff)

    demo = sub.add_parser("demo", help="audit the reference CNN on the bundled digits and an MLP on breast cancer",
                          description="Audit the reference CNN on the bundled 8x8 digits (or, with --data-dir, the "
                          "MNIST CNN on MNIST) and an MLP on the bundled breast-cancer data, with every capability, "
                          "and write both reports.")
    demo.add_argument("--output-dir", "-o", default="scrutiny-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files: audit the MNIST CNN instead")
    demo.add_argument("--cache-dir", default=None, help="weight cache (default: $SCRUTINY_CACHE_DIR or ~/.cache/scrutiny)")
    demo.add_argument("--retrain", action="store_true", help="train even if cached weights exist")
    _common(demo)
    demo.set_defaults(func=_demo)
    return parser


def _gate(trail: dict, spec: str | None, say) -> int:
    from .audit.checks import evaluate_checks, parse_checks

    if not spec:
        return 0
    outcomes = evaluate_checks(parse_checks(spec), trail)
    for o in outcomes:
        (say if not o.failed else _err)(o.message)
    return 1 if any(o.failed for o in outcomes) else 0


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _say(args: argparse.Namespace):
    return (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))


def _summary(trail: dict, out: Path, say) -> None:
    for s in trail["sections"]:
        extra = s["reason"] or s["error"] or ""
        say(f"  {s['name']:<15} {s['status']:<8} {s['seconds']:7.1f} s  {extra}"[:200])
    say(f"Wrote {out / 'report.html'} and {out / 'audit.json'}")


def _audit(args: argparse.Namespace) -> int:
    from .audit import check_compatible, load_config, load_data, load_model, run_audit
    from .audit.checks import parse_checks
    from .audit.config import resolve_execution

    if args.fail_on:
        parse_checks(args.fail_on)  # a typo is a usage error before minutes of work
    if args.jobs < 1:
        raise ScrutinyError(f"--jobs must be at least 1; got {args.jobs}.")
    config = load_config(args.config, args.budget)
    execution = resolve_execution(config, args.backend, args.scheduler, args.workers)  # usage errors first
    data = load_data(args.data, label=args.label, labels=args.labels)
    train = load_data(args.train, label=args.label, labels=args.train_labels, what="--train") if args.train else None
    model = load_model(args.model, arch=args.arch, data=data.dataset)
    check_compatible(model, data.dataset)
    if train is not None and train.dataset.X.shape[1:] != data.dataset.X.shape[1:]:
        raise ScrutinyError(f"--train rows have shape {train.dataset.X.shape[1:]} but --data rows have "
                            f"{data.dataset.X.shape[1:]}; they must match.")
    out = _output_dir(args.output_dir)
    trail = run_audit(model, data, out, train=train, config=config, seed=args.seed, jobs=args.jobs,
                      quiet=args.quiet, strict=args.strict, argv=["scrutiny"] + list(args._argv),
                      backend=execution["backend"], scheduler=execution["scheduler"], n_workers=execution["workers"])
    say = _say(args)
    _summary(trail, out, say)
    return _gate(trail, args.fail_on, say)


def _output_dir(path: str) -> Path:
    """The output folder, created now so that a bad path fails before any work, with the fix."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ScrutinyError(f"--output-dir {path!r} exists and is not a folder; give a folder path.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScrutinyError(f"--output-dir {path!r} cannot be created ({exc.strerror}); give a writable folder.") from None
    if not os.access(out, os.W_OK):
        raise ScrutinyError(f"--output-dir {path!r} is not writable; give a writable folder.")
    return out


def _report(args: argparse.Namespace) -> int:
    from .audit.report import write_report
    from .audit.trail import read_trail

    out = Path(args.output_dir)
    trail = read_trail(out)
    path = write_report(out if out.is_dir() else out.parent, trail)
    _say(args)(f"Wrote {path}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .audit.diff import diff_audits, format_diff
    from .audit.trail import read_trail

    d = diff_audits(read_trail(args.old), read_trail(args.new))
    print(json.dumps(d, indent=1) if args.json else format_diff(d))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .audit.demo import run_demo

    t0 = time.perf_counter()
    say = _say(args)
    _output_dir(args.output_dir)
    trails = run_demo(args, say)
    code = max((_gate(t, args.fail_on, say) for t in trails), default=0)
    say(f"Demo finished in {time.perf_counter() - t0:.1f} s")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a --fail-on check failed, 2 usage/input error)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        if exc.code in (0, None):
            raise
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    args._argv = argv
    try:
        return int(args.func(args))
    except ScrutinyError as exc:
        _err(f"scrutiny {args.command}: error: {exc}")
        return 2
    except OSError as exc:  # a file system failure during the run (disk full, permissions): one line, not a traceback
        _err(f"scrutiny {args.command}: error: {exc}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
