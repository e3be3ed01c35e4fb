"""The report figures: decodable PNG data URIs whose pixel size follows dpi and what is shown,
shape errors that name the argument, and inputs cut to the stated maxima."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import numpy as np
import pytest

from scrutiny.exceptions import InvalidParameterError
from scrutiny.viz import (
    attribution_bars,
    confusion_matrix_plot,
    dmm_heatmaps,
    faithfulness_curve,
    image_attributions,
    image_gallery,
    nnk_panel,
    to_data_uri,
    trace_plot,
)

RNG = np.random.default_rng(0)
PREFIX = "data:image/png;base64,"


def decode(uri: str) -> np.ndarray:
    from matplotlib.image import imread

    assert uri.startswith(PREFIX)
    return imread(io.BytesIO(base64.b64decode(uri[len(PREFIX):], validate=True)), format="png")


def _dmm(shape=(3, 64)):
    m = RNG.normal(size=shape)
    return m, m - 0.4, m + 0.4


def _calls():
    """One valid call per figure function (name, callable taking dpi)."""
    imgs = RNG.random((6, 8, 8))
    m, lo, hi = _dmm()
    mt, lot, hit = _dmm((2, 9))
    return {
        "attribution_bars": lambda dpi: attribution_bars(RNG.normal(size=9), [f"f{i}" for i in range(9)], "t", dpi=dpi),
        "image_attributions": lambda dpi: image_attributions(imgs, RNG.normal(size=(6, 8, 8)), list("abcdef"), dpi=dpi),
        "image_gallery": lambda dpi: image_gallery(RNG.random((5, 3, 8, 8)), list("abcde"), "gallery", dpi=dpi),
        "nnk_image": lambda dpi: nnk_panel(imgs[0], imgs[1:4], [0.5, 0.2, 0.0], ["1", "2", "3"], dpi=dpi),
        "nnk_tabular": lambda dpi: nnk_panel(RNG.random(4), RNG.random((3, 4)), [0.5, 0.2, 0.0], None, dpi=dpi),
        "trace_plot": lambda dpi: trace_plot(RNG.normal(size=(3, 200)), rhat=1.01, title="t", dpi=dpi),
        "faithfulness_curve": lambda dpi: faithfulness_curve(
            np.linspace(0, 1, 6), {"a": RNG.random(6), "b": RNG.random((4, 6))}, "d", dpi=dpi
        ),
        "confusion_matrix_plot": lambda dpi: confusion_matrix_plot(RNG.integers(0, 9, (3, 3)), ["x", "y", "z"], dpi=dpi),
        "dmm_image": lambda dpi: dmm_heatmaps(m, lo, hi, image_shape=(8, 8), dpi=dpi),
        "dmm_tabular": lambda dpi: dmm_heatmaps(mt, lot, hit, feature_names=[f"f{i}" for i in range(9)], dpi=dpi),
    }


@pytest.mark.parametrize("name", list(_calls()))
def test_each_figure_is_a_decodable_png_whose_size_scales_with_dpi(name):
    call = _calls()[name]
    small, large = decode(call(50)), decode(call(100))
    assert small.ndim == 3 and small.shape[2] in (3, 4)
    # sane: at least a thumbnail, at most a page
    assert 60 <= small.shape[0] <= 1500 and 60 <= small.shape[1] <= 1500
    # fixed figure size in inches, so doubling dpi doubles the pixels (+-1 for rounding)
    assert abs(large.shape[0] - 2 * small.shape[0]) <= 1 and abs(large.shape[1] - 2 * small.shape[1]) <= 1
    # not a blank canvas
    assert small[..., :3].std() > 0.01


def test_to_data_uri_takes_a_plain_figure_and_rejects_other_things():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    assert decode(to_data_uri(fig, dpi=40)).shape[:2] == (40, 80)
    with pytest.raises(InvalidParameterError, match="fig must be a matplotlib Figure"):
        to_data_uri("not a figure")
    with pytest.raises(InvalidParameterError, match="dpi must be"):
        to_data_uri(fig, dpi=0)
    with pytest.raises(InvalidParameterError, match="colors must be"):
        to_data_uri(fig, colors=1)


def test_palette_png_is_smaller_and_close_to_the_lossless_one():
    from matplotlib.figure import Figure

    def fig():
        f = Figure(figsize=(3, 3))
        f.add_subplot().imshow(np.sin(np.linspace(0, 9, 40))[:, None] * np.cos(np.linspace(0, 7, 40)), cmap="RdBu_r")
        return f

    lossless, palette = to_data_uri(fig(), dpi=80, colors=None), to_data_uri(fig(), dpi=80)
    a, b = decode(lossless)[..., :3], decode(palette)[..., :3]
    assert a.shape == b.shape
    assert len(palette) < len(lossless)
    # 256 median-cut colours: small on average; the worst pixel (an anti-aliased edge or a rare
    # shade merged into a neighbour's bin) stays well under a fifth of the range
    err = np.abs(a - b)
    assert err.mean() < 0.01 and err.max() < 0.2


def test_figures_use_no_pyplot_and_leave_rcparams_alone():
    code = (
        "import sys, matplotlib, numpy as np\n"
        # dict.__getitem__: RcParams' own lookup of "backend" would itself import pyplot
        "snap = lambda: {k: repr(dict.__getitem__(matplotlib.rcParams, k)) for k in matplotlib.rcParams.keys()}\n"
        "before = snap()\n"
        "from scrutiny.viz import attribution_bars, trace_plot\n"
        "attribution_bars(np.arange(3.0) - 1, ['a', 'b', 'c'])\n"
        "trace_plot(np.zeros((2, 10)))\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert snap() == before, 'rcParams changed'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_scrutiny_and_viz_do_not_import_matplotlib():
    code = (
        "import sys, scrutiny, scrutiny.viz\n"
        "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)[:5]\n"
        "scrutiny.viz.attribution_bars\n"  # resolving the name is still lazy
        "assert 'matplotlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_no_scrutiny_module_imports_matplotlib_at_import_time():
    code = (
        "import importlib, pkgutil, sys, scrutiny\n"
        "for m in pkgutil.walk_packages(scrutiny.__path__, 'scrutiny.'):\n"
        "    importlib.import_module(m.name)\n"
        "    assert 'matplotlib' not in sys.modules, m.name + ' imports matplotlib'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_caller_text_with_mathtext_and_html_is_drawn_verbatim():
    # "$" would make mathtext raise on an unbalanced or bad expression; names are drawn as given
    names = ["$\\frac{", "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</style>"]
    decode(attribution_bars([1.0, -2.0, 0.5, 0.1], names, title="$\\sqrt{"))
    decode(confusion_matrix_plot(np.eye(4), names, title="$x"))
    decode(faithfulness_curve([0.0, 1.0], {n: [1.0, 0.0] for n in names}, title="$"))
    decode(image_gallery(RNG.random((4, 5, 5)), names, title="$"))


def test_wide_attributions_are_cut_to_top_k_bars(monkeypatch):
    from matplotlib.axes import Axes

    drawn = []
    original = Axes.barh

    def barh(self, y, width, *args, **kwargs):
        drawn.append(np.asarray(width).copy())
        return original(self, y, width, *args, **kwargs)

    monkeypatch.setattr(Axes, "barh", barh)
    v = RNG.normal(size=500)
    decode(attribution_bars(v, None, top_k=15))
    assert len(drawn) == 1 and len(drawn[0]) == 15
    # the 15 largest |value|, largest first
    assert np.array_equal(drawn[0], v[np.argsort(-np.abs(v))[:15]])
    # the figure height is fixed by top_k, so 500 features draw exactly as tall as 15
    wide = decode(attribution_bars(RNG.normal(size=500), None, top_k=15))
    narrow = decode(attribution_bars(RNG.normal(size=15), None, top_k=15))
    assert wide.shape == narrow.shape


def test_top_features_and_thin():
    from scrutiny.viz.audit_plots import thin, top_features

    v = np.array([0.1, -3.0, 2.0, 0.0, -0.5])
    assert list(top_features(v, 3)) == [1, 2, 4]
    idx = thin(10_000, 1000)
    assert len(idx) <= 1000 and idx[0] == 0 and idx[-1] == 9999 and np.all(np.diff(idx) > 0)
    assert list(thin(5, 1000)) == [0, 1, 2, 3, 4]


def _recorded_lines(monkeypatch):
    from matplotlib.axes import Axes

    lengths: list[int] = []
    original = Axes.plot

    def plot(self, *args, **kwargs):
        lines = original(self, *args, **kwargs)
        lengths.extend(len(line.get_xdata()) for line in lines)
        return lines

    monkeypatch.setattr(Axes, "plot", plot)
    return lengths


def test_long_traces_are_thinned_and_params_capped(monkeypatch):
    lengths = _recorded_lines(monkeypatch)
    decode(trace_plot(RNG.normal(size=(4, 20_000, 9)), rhat=np.ones(9), max_points=500, max_params=3))
    assert len(lengths) == 4 * 3  # chains x shown parameters
    assert max(lengths) <= 500 and min(lengths) >= 400


def test_galleries_and_panels_stop_at_their_maximum(monkeypatch):
    from matplotlib.axes import Axes

    shown = []
    original = Axes.imshow
    monkeypatch.setattr(Axes, "imshow", lambda self, X, *a, **k: (shown.append(1), original(self, X, *a, **k))[1])
    decode(image_gallery(RNG.random((100, 6, 6)), max_images=16, ncols=8))
    assert len(shown) == 16
    shown.clear()
    decode(nnk_panel(RNG.random((6, 6)), RNG.random((50, 6, 6)), RNG.random(50), None, max_neighbours=5))
    assert len(shown) == 1 + 5  # the query, then the neighbours
    many = decode(image_gallery(RNG.random((100, 6, 6)), max_images=16, ncols=8))
    exact = decode(image_gallery(RNG.random((16, 6, 6)), max_images=16, ncols=8))
    assert many.shape == exact.shape
    a = decode(image_attributions(RNG.random((40, 6, 6)), RNG.normal(size=(40, 6, 6)), max_images=8, ncols=4))
    b = decode(image_attributions(RNG.random((8, 6, 6)), RNG.normal(size=(8, 6, 6)), max_images=8, ncols=4))
    assert a.shape == b.shape
    w = RNG.random(50)
    a = decode(nnk_panel(RNG.random((6, 6)), RNG.random((50, 6, 6)), w, None, max_neighbours=5))
    b = decode(nnk_panel(RNG.random((6, 6)), RNG.random((5, 6, 6)), w[:5], None, max_neighbours=5))
    assert a.shape == b.shape
    m, lo, hi = _dmm((30, 64))
    a = decode(dmm_heatmaps(m, lo, hi, image_shape=(8, 8), max_classes=10))
    b = decode(dmm_heatmaps(m[:10], lo[:10], hi[:10], image_shape=(8, 8), max_classes=10))
    assert a.shape == b.shape


def test_channel_layouts_are_accepted():
    for shape in [(3, 8, 8), (3, 1, 8, 8), (3, 3, 8, 8), (3, 8, 8, 3), (3, 8, 8, 1)]:
        decode(image_gallery(RNG.random(shape)))
        decode(image_attributions(RNG.random(shape), RNG.normal(size=shape)))
    decode(image_attributions(RNG.random((2, 3, 8, 8)), RNG.normal(size=(2, 8, 8))))
    decode(dmm_heatmaps(*_dmm((2, 3 * 16)), image_shape=(3, 4, 4)))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: attribution_bars(np.zeros((2, 3)), None), "values must be 1-D"),
        (lambda: attribution_bars([1.0, 2.0], ["a"]), "feature_names must hold 2 names"),
        (lambda: attribution_bars([1.0, np.nan], None), "values holds NaN"),
        (lambda: attribution_bars([1.0], None, top_k=0), "top_k must be an int >= 1"),
        (lambda: attribution_bars([], None), "values must not be empty"),
        (lambda: image_attributions(np.zeros((2, 8, 8)), np.zeros((3, 8, 8))), "one map per image"),
        (lambda: image_attributions(np.zeros((2, 8, 8)), np.zeros((2, 7, 8))), r"attributions\[0\] must match"),
        (lambda: image_attributions(np.zeros((8, 8)), np.zeros((8, 8))), "images must be 3-D or 4-D"),
        (lambda: image_gallery(np.zeros((2, 5, 8, 8))), r"images\[0\] must hold images"),
        (lambda: image_gallery(np.zeros((2, 8, 8)), ["a"]), "captions must hold 2 names"),
        (lambda: nnk_panel(np.zeros((8, 8)), np.zeros((3, 7, 8)), [1, 1, 1], None), "neighbours must have shape"),
        (lambda: nnk_panel(np.zeros(4), np.zeros((3, 4)), [1, 1], None), "weights must hold one value per neighbour"),
        (lambda: nnk_panel(np.zeros(4), np.zeros((2, 4)), [1, -1], None), "weights must be non-negative"),
        (lambda: trace_plot(np.zeros(10)), "traces must be 2-D or 3-D"),
        (lambda: trace_plot(np.zeros((2, 10, 3)), rhat=[1.0]), "rhat must hold one value per parameter"),
        (lambda: faithfulness_curve([0, 1], {"a": [1, 2, 3]}), r"curves\['a'\] must have 2 steps"),
        (lambda: faithfulness_curve([1, 0], {"a": [1, 2]}), "fractions must be non-decreasing"),
        (lambda: faithfulness_curve([0, 1], {}), "curves must be a non-empty dict"),
        (lambda: confusion_matrix_plot(np.zeros((2, 3)), None), "cm must be square"),
        (lambda: confusion_matrix_plot(-np.eye(2), None), "non-negative"),
        (lambda: confusion_matrix_plot(np.eye(2), ["a"]), "class_names must hold 2 names"),
        (lambda: dmm_heatmaps(np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((2, 3))), "lower and upper must have"),
        (lambda: dmm_heatmaps(np.zeros((2, 4)), np.ones((2, 4)), np.zeros((2, 4))), "lower must not exceed upper"),
        (lambda: dmm_heatmaps(*_dmm((2, 64)), image_shape=(7, 8)), "image_shape must be"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()
