"""Glass-box models against their reference programs (issue 18).

Sections (``--sections``, comma-separated, default ``rules,risk,compare``):

* ``rules`` -- :class:`scrutiny.glassbox.RuleListClassifier` on the CORELS COMPAS fold
  (``compas/compas_train.out``/``.label``/``.minor``: 155 antecedents, 6,489 people) at
  regularization 0.015, 0.01 and 0.005: objective, certification, nodes, train/test accuracy and
  time, next to the reference C++ CORELS timed in the same run. The reference is built from the
  ``corels`` source distribution on the package index into a throwaway folder (``pip download``,
  then ``g++ -O3`` of its ``src/corels/*.cpp`` with a small driver that reads the same files and
  runs the same search: lower-bound policy, prefix map, equivalent-points bound). Where that
  fails the reason is printed and the issue's figures (1.6 s, 31 s, 129 s) stand in.
  ``--maps`` adds a table of every policy and symmetry map at one regularization.
* ``risk`` and ``compare`` -- provided by ``benchmarks/_glassbox_risk.py`` (functions
  ``run_risk(args)`` and ``run_compare(args)``), skipped with a message when it is missing.

Usage::

    python benchmarks/glassbox.py --sections rules
    python benchmarks/glassbox.py --sections rules --lambdas 0.015 0.01 --cxx-timeout 120
    python benchmarks/glassbox.py --sections rules --maps 0.01 --no-cxx --json glassbox.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# certified optima of the COMPAS fold (shared/data/README.md, wave2-anchors.md)
EXPECTED = {0.015: 0.37797, 0.01: 0.36797, 0.005: 0.34809}
ISSUE_CXX_SECONDS = {0.015: "1.6", 0.01: "31", 0.005: "129 to >540"}

DRIVER = r"""
// Benchmark driver for the reference CORELS sources: reads .out/.label/.minor and runs the search.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include "corels/rule.h"
#include "corels/run.h"

typedef std::vector<std::pair<std::string, std::string> > Rows;

static Rows read_rows(const char* path) {
    Rows out; std::ifstream f(path); std::string line;
    while (std::getline(f, line)) {
        std::istringstream ss(line); std::string name, tok, bits; ss >> name;
        if (name.empty()) continue;
        while (ss >> tok) bits += tok;
        out.push_back(std::make_pair(name, bits));
    }
    return out;
}

static rule_t* vectors(const Rows& rows, int with_default) {
    int n = rows.size() + with_default, nsamples = rows[0].second.size();
    rule_t* r = (rule_t*)calloc(n, sizeof(rule_t));
    for (int i = 0; i < n; i++) {
        bool dflt = with_default && i == 0;
        std::string name = dflt ? std::string("{default}") : rows[i - with_default].first;
        std::string bits = dflt ? std::string(nsamples, '1') : rows[i - with_default].second;
        int ns = 0, ones = 0;
        if (ascii_to_vector((char*)bits.c_str(), bits.size(), &ns, &ones, &r[i].truthtable) != 0) exit(2);
        r[i].features = strdup(name.c_str());
        r[i].support = ones;
        r[i].cardinality = dflt ? 0 : 1 + (int)std::count(name.begin(), name.end(), ',');
        r[i].ids = NULL;
    }
    return r;
}

int main(int argc, char** argv) {
    if (argc < 5) { fprintf(stderr, "usage: corels_ref c data.out data.label data.minor|-\n"); return 1; }
    double c = atof(argv[1]);
    Rows rows = read_rows(argv[2]), labs = read_rows(argv[3]);
    rule_t* rules = vectors(rows, 1);
    rule_t* labels = vectors(labs, 0);
    rule_t* minor = NULL;
    if (strcmp(argv[4], "-") != 0) { Rows m = read_rows(argv[4]); minor = vectors(m, 0); }
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    char verbosity[] = "progress";
    // policy 2 = lower bound, map 1 = prefix permutation map, ablation 0 = every bound on
    if (run_corels_begin(c, verbosity, 2, 1, 0, 0, rows.size() + 1, labs.size(), rows[0].second.size(),
                         rules, labels, minor) != 0) return 3;
    while (run_corels_loop((size_t)4e9) == 0) {}
    int *rl, *cls, len;
    double acc = run_corels_end(&rl, &len, &cls, 0);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("RESULT seconds=%.4f objective=%.6f length=%d\n", secs, 1.0 - acc + c * len, len);
    return 0;
}
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default: %(default)s")
    p.add_argument("--sections", default="rules,risk,compare", help="comma-separated: rules, risk, compare")
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.015, 0.01, 0.005])
    p.add_argument("--maps", type=float, default=None, metavar="LAMBDA",
                   help="also compare every policy and symmetry map at this regularization")
    p.add_argument("--no-cxx", action="store_true", help="do not build or run the reference C++ CORELS")
    p.add_argument("--corels-bin", type=Path, default=None, help="an already built reference driver")
    p.add_argument("--cxx-timeout", type=float, default=900.0, help="seconds per reference run (default 900)")
    p.add_argument("--time-limit", type=float, default=600.0, help="scrutiny's time_limit per fit (default 600)")
    p.add_argument("--json", type=Path, default=None)
    # read by _glassbox_risk.run_risk / run_compare
    p.add_argument("--seed", type=int, default=0, help="split and cross-validation seed of risk/compare")
    p.add_argument("--fasterrisk", default=None, help="folder holding a patched fasterrisk (default /tmp/fr)")
    p.add_argument("--datasets", nargs="+", default=None, help="data sets of the compare section (default: all)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the reference program


def build_reference(workdir: Path) -> tuple[Path | None, str]:
    """Build the reference driver in ``workdir``; returns (binary or None, what happened)."""
    pip = [sys.executable, "-m", "pip", "download", "corels", "--no-deps", "--no-binary", ":all:", "-d", str(workdir)]
    res = subprocess.run(pip, capture_output=True, text=True)
    sdists = list(workdir.glob("corels-*.tar.gz"))
    if not sdists:
        # pip builds the metadata of an sdist while downloading it, and corels's setup.py fails under
        # PEP 517; the legacy route needs setuptools and wheel, which a throwaway venv provides
        venv = workdir / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
        vpip = str(venv / "bin" / "pip")
        subprocess.run([vpip, "install", "-q", "setuptools", "wheel", "numpy"], capture_output=True)
        res = subprocess.run([vpip, "download", "corels", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
                              "--no-use-pep517", "-d", str(workdir)], capture_output=True, text=True)
        sdists = list(workdir.glob("corels-*.tar.gz"))
    if not sdists:
        return None, "pip download failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    with tarfile.open(sdists[0]) as tar:
        tar.extractall(workdir, filter="data")
    src = next(workdir.glob("corels-*/corels/src/corels"), None)
    if src is None:
        return None, f"no corels/src/corels folder in {sdists[0].name}"
    (workdir / "driver.cpp").write_text(DRIVER)
    cxx = shutil.which("g++")
    if cxx is None:
        return None, "g++ not found"
    sources = sorted(str(s) for s in src.glob("*.cpp"))
    out = workdir / "corels_ref"
    gmp = any(Path(d, "gmp.h").exists() for d in ("/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/local/include"))
    flags = ["-DGMP"] if gmp else []
    cmd = [cxx, "-O3", "-DNDEBUG", "-std=c++11", *flags, f"-I{src.parent}", f"-I{src}",
           str(workdir / "driver.cpp"), *sources, "-o", str(out)] + (["-lgmp"] if gmp else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return None, "g++ failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    return out, f"built {sdists[0].name} with g++ -O3 ({'GMP' if gmp else 'no GMP'})"


def run_reference(binary: Path, lam: float, stem: Path, timeout: float) -> dict:
    args = [str(binary), repr(lam), f"{stem}.out", f"{stem}.label", f"{stem}.minor"]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "objective": None, "note": f"> {timeout:g} s (stopped)"}
    wall = time.perf_counter() - t0
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        return {"seconds": None, "objective": None, "note": f"failed (exit {res.returncode})"}
    fields = dict(kv.split("=") for kv in line.split()[1:])
    return {"seconds": wall, "search_seconds": float(fields["seconds"]), "objective": float(fields["objective"]),
            "length": int(fields["length"]), "note": "certified (queue empty)"}


# --------------------------------------------------------------------------- sections


def section_rules(args) -> dict:
    from scrutiny.data import read_corels
    from scrutiny.glassbox import RuleListClassifier

    stem = args.data_dir / "compas" / "compas_train"
    if not Path(f"{stem}.out").exists():
        print(f"[rules] skipped: {stem}.out not found (pass --data-dir)")
        return {}
    train = read_corels(f"{stem}.out")
    test = read_corels(args.data_dir / "compas" / "compas_test.out")
    print(f"[rules] COMPAS fold: {train.X.shape[0]} training rows, {train.X.shape[1]} antecedents, "
          f"{test.X.shape[0]} test rows")
    # compile (or load from numba's cache) before timing
    RuleListClassifier(0.05, antecedents="given").fit(train.X[:200], train.y[:200])

    binary, how = None, "skipped (--no-cxx)"
    tmp = None
    if not args.no_cxx:
        if args.corels_bin is not None:
            binary, how = args.corels_bin, f"given: {args.corels_bin}"
        else:
            tmp = Path(tempfile.mkdtemp(prefix="corels_ref_"))
            binary, how = build_reference(tmp)
    print(f"[rules] reference C++ CORELS: {how}")

    rows = []
    for lam in args.lambdas:
        clf = RuleListClassifier(lam, antecedents="given", feature_names=train.feature_names,
                                 time_limit=args.time_limit)
        t0 = time.perf_counter()
        clf.fit(train.X, train.y)
        ours = time.perf_counter() - t0
        ref = run_reference(binary, lam, stem, args.cxx_timeout) if binary is not None else None
        row = {
            "lambda": lam, "objective": clf.objective_, "expected": EXPECTED.get(lam), "certified": clf.certified_,
            "gap": clf.gap_, "n_rules": len(clf.rules_) - 1, "n_nodes": clf.n_nodes_, "n_evaluated": clf.n_evaluated_,
            "train_acc": clf.score(train.X, train.y), "test_acc": clf.score(test.X, test.y), "seconds": ours,
            "rules": [r.condition for r in clf.rules_[:-1]], "reference": ref,
        }
        rows.append(row)
        print(f"\n[rules] lambda={lam}:\n{clf}")

    head = (f"{'lambda':>7} {'objective':>10} {'expected':>9} {'cert':>5} {'rules':>5} {'nodes':>9} "
            f"{'train':>6} {'test':>6} {'scrutiny s':>10} {'C++ s':>12} {'C++ obj':>9} {'speed-up':>8}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        ref = r["reference"]
        if ref is None:
            cxx, cobj, ratio = f"({ISSUE_CXX_SECONDS.get(r['lambda'], '?')})", "-", "-"
        elif ref["seconds"] is None:
            cxx, cobj, ratio = ref["note"], "-", (f">{args.cxx_timeout / r['seconds']:.0f}x"
                                                   if ref["note"].startswith(">") else "-")
        else:
            cxx, cobj, ratio = f"{ref['seconds']:.2f}", f"{ref['objective']:.5f}", f"{ref['seconds'] / r['seconds']:.1f}x"
        exp = "-" if r["expected"] is None else f"{r['expected']:.5f}"
        print(f"{r['lambda']:>7g} {r['objective']:>10.5f} {exp:>9} {str(r['certified']):>5} {r['n_rules']:>5} "
              f"{r['n_nodes']:>9} {r['train_acc']:>6.3f} {r['test_acc']:>6.3f} {r['seconds']:>10.2f} {cxx:>12} "
              f"{cobj:>9} {ratio:>8}")
    if binary is None:
        print("(C++ column in parentheses: the issue's measured figures, since the reference was not run here)")
    out = {"reference": how, "rows": rows}
    if args.maps is not None:
        out["maps"] = _maps_table(train, args.maps, args.time_limit)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _maps_table(train, lam: float, time_limit: float) -> list:
    from scrutiny.glassbox import RuleListClassifier

    print(f"\n[rules] policies and symmetry maps at lambda={lam}")
    head = f"{'map':>9} {'policy':>12} {'objective':>10} {'cert':>5} {'nodes':>9} {'evaluated':>11} {'seconds':>8}"
    print(head + "\n" + "-" * len(head))
    out = []
    for map_type in ("captured", "prefix", "none"):
        for policy in ("lower_bound", "curiosity", "objective", "bfs", "dfs"):
            clf = RuleListClassifier(lam, antecedents="given", map_type=map_type, policy=policy,
                                     time_limit=time_limit)
            t0 = time.perf_counter()
            clf.fit(train.X, train.y)
            sec = time.perf_counter() - t0
            print(f"{map_type:>9} {policy:>12} {clf.objective_:>10.5f} {str(clf.certified_):>5} {clf.n_nodes_:>9} "
                  f"{clf.n_evaluated_:>11} {sec:>8.2f}")
            out.append({"map_type": map_type, "policy": policy, "objective": clf.objective_,
                        "certified": clf.certified_, "n_nodes": clf.n_nodes_, "seconds": sec})
    return out


def _risk_section(name: str, args) -> dict:
    try:
        mod = importlib.import_module("_glassbox_risk")
    except ImportError as exc:
        print(f"[{name}] skipped: benchmarks/_glassbox_risk.py is not available ({exc})")
        return {}
    fn = getattr(mod, f"run_{name}", None)
    if fn is None:
        print(f"[{name}] skipped: _glassbox_risk has no run_{name}(args)")
        return {}
    return fn(args) or {}


def main(argv=None) -> int:
    args = parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in ("rules", "risk", "compare")]
    if unknown:
        print(f"unknown section(s) {unknown}; choose among rules, risk, compare", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {}
    for s in sections:
        results[s] = section_rules(args) if s == "rules" else _risk_section(s, args)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
