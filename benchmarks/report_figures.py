"""Size of every audit-report figure (``scrutiny.viz`` data URIs) as palette and lossless PNG.

Backs the default ``to_data_uri(..., colors=256)``: the report inlines every figure, so its size
budget is mostly these bytes. Inputs are report-sized (digits images, 784-pixel DMM-MEN maps,
MCMC traces of 2000 iterations) and drawn from a fixed seed.

Usage::

    python benchmarks/report_figures.py [--dpi 100] [--json sizes.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.datasets import load_digits

import scrutiny.viz as v


def cases(rng: np.random.Generator) -> dict:
    digits = load_digits().images[:16]
    yy, xx = np.mgrid[:28, :28]
    maps = np.stack([np.sin(xx / 4 + i) * np.cos(yy / 5) + 0.1 * rng.normal(size=(28, 28)) for i in range(10)])
    maps = maps.reshape(10, -1)
    tab = rng.normal(size=(2, 30))
    walk = np.cumsum(rng.normal(size=(4, 2000, 3)), axis=1) * 0.05 + rng.normal(size=(4, 2000, 3))
    steps = np.linspace(0, 1, 21)
    return {
        "attribution_bars (30 features)": lambda **k: v.attribution_bars(rng.normal(size=30), [f"feature {i}" for i in range(30)], "t", **k),
        "image_attributions (8 digits)": lambda **k: v.image_attributions(digits[:8], rng.normal(size=(8, 8, 8)), [str(i) for i in range(8)], **k),
        "image_gallery (16 digits)": lambda **k: v.image_gallery(digits, [f"#{i} label 3" for i in range(16)], "g", **k),
        "nnk_panel (image, 8 neighbours)": lambda **k: v.nnk_panel(digits[0], digits[1:9], rng.random(8), [str(i) for i in range(8)], **k),
        "trace_plot (4 chains x 2000 x 3)": lambda **k: v.trace_plot(walk, rhat=[1.0, 1.01, 1.2], **k),
        "faithfulness_curve (5 methods)": lambda **k: v.faithfulness_curve(
            steps, {f"m{i}": np.exp(-steps * (i + 1))[None] + 0.05 * rng.random((10, 21)) for i in range(5)}, **k
        ),
        "confusion_matrix_plot (10 classes)": lambda **k: v.confusion_matrix_plot(
            rng.integers(0, 5, (10, 10)) + 50 * np.eye(10, dtype=int), [str(i) for i in range(10)], **k
        ),
        "dmm_heatmaps (10 x 28x28)": lambda **k: v.dmm_heatmaps(maps, maps - 0.5, maps + 0.5, image_shape=(28, 28), **k),
        "dmm_heatmaps (tabular 2 x 30)": lambda **k: v.dmm_heatmaps(tab, tab - 0.5, tab + 0.5, **k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import scrutiny.viz._figures as figures

    rows = []
    for name in cases(np.random.default_rng(0)):
        sizes = {}
        for label, colors in (("palette", 256), ("lossless", None)):
            # same seed per variant, so both encodings draw the same figure
            call = cases(np.random.default_rng(0))[name]
            original = figures.to_data_uri
            uri = call(dpi=args.dpi) if colors == 256 else _lossless(call, args.dpi, figures, original)
            sizes[label] = len(uri)
        rows.append({"figure": name, **sizes})
    print(f"{'figure':36s} {'palette KiB':>12s} {'lossless KiB':>13s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['figure']:36s} {r['palette'] / 1024:12.1f} {r['lossless'] / 1024:13.1f} {r['lossless'] / r['palette']:6.2f}")
    tp, tl = sum(r["palette"] for r in rows), sum(r["lossless"] for r in rows)
    print(f"{'total':36s} {tp / 1024:12.1f} {tl / 1024:13.1f} {tl / tp:6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dpi": args.dpi, "rows": rows}, f, indent=1)


def _lossless(call, dpi, figures, original):
    """Call a figure function with its module's to_data_uri switched to colors=None."""
    import scrutiny.viz.audit_images as images
    import scrutiny.viz.audit_plots as plots

    def lossless(fig, dpi=100):
        return original(fig, dpi=dpi, colors=None)

    saved = plots.to_data_uri, images.to_data_uri
    plots.to_data_uri = images.to_data_uri = lossless
    try:
        return call(dpi=dpi)
    finally:
        plots.to_data_uri, images.to_data_uri = saved


if __name__ == "__main__":
    main()
