"""Shared fixtures: one logistic model in three wrappings (scikit-learn, torch, callable)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run the suite with one torch intra-op thread and one BLAS thread, then restore them.

    The test models are tiny: a second thread gains nothing, and when other processes share
    the cores, OpenMP barriers make multi-threaded training of the digits CNN many times
    slower with identical results. Library code never sets the thread count.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # BLAS too: the test problems are small
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def iris():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="session")
def logistic_trio(iris):
    """The same multinomial logistic model as a scikit-learn estimator, a torch module and a callable.

    Returns a dict name -> raw object, plus "coef", "intercept" and the data.
    """
    import torch
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(X, y)
    W, b = clf.coef_.copy(), clf.intercept_.copy()
    lin = torch.nn.Linear(X.shape[1], W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W))
        lin.bias.copy_(torch.as_tensor(b))

    def fn(Z):
        return Z @ W.T + b

    return {"sklearn": clf, "torch": lin, "callable": fn, "coef": W, "intercept": b, "X": X, "y": y}


def wrap(trio, kind, **kwargs):
    """as_model over one member of the trio with the right output declaration."""
    import torch

    from scrutiny import as_model

    if kind == "sklearn":
        return as_model(trio["sklearn"], **kwargs)
    if kind == "torch":
        return as_model(trio["torch"], output="logit", dtype=torch.float64, **kwargs)
    return as_model(trio["callable"], output="logit", **kwargs)


@pytest.fixture
def rng_guard():
    """Fails the test if global numpy or torch RNG state changed."""
    import torch

    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state().clone()
    yield
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:], (
        "global numpy RNG state changed"
    )
    assert torch.equal(torch.random.get_rng_state(), torch_state), "global torch RNG state changed"


@pytest.fixture
def browser_page():
    """``open(path) -> Page``: the HTML file loaded in headless Chromium with the network blocked.

    Every page opened is closed (its browser killed) at teardown. Skips, saying how to install
    it, when Chromium is missing (CI's ``.ci/run`` installs Debian's ``chromium``).
    """
    import contextlib

    from _cdp import find_chromium, open_page

    if find_chromium() is None:
        pytest.skip("chromium is not installed: `apt-get install -y chromium` (or set SCRUTINY_CHROMIUM) to run the browser tests")
    with contextlib.ExitStack() as stack:
        yield lambda path=None, **kw: stack.enter_context(open_page(path, **kw))
