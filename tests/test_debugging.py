"""detect_mislabeled's representer ranking: the degenerate setting and the reference code's setting."""

import numpy as np
import pytest
import scipy.stats

from scrutiny.exceptions import InvalidParameterError

L2 = 1e-2


def _problem():
    import torch
    from scipy.special import softmax

    from scrutiny.data import load_digits

    d = load_digits()
    X, y = d.X.reshape(len(d.X), -1)[:300], d.y[:300].copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(300, 60, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + rng.integers(1, 10, 60)) % 10
    is_flipped = np.zeros(300, bool)
    is_flipped[flipped] = True
    # multinomial L2 logistic regression (bias regularised) brought to its optimum by Newton's method
    n, c = len(y), 10
    Xt = np.hstack([X, np.ones((n, 1))])
    Y = np.eye(c)[y_noisy]
    th = np.zeros((c, Xt.shape[1]))
    for _ in range(30):
        P = softmax(Xt @ th.T, axis=1)
        g = ((P - Y).T @ Xt / n + L2 * th).ravel()
        if np.linalg.norm(g) < 1e-12:
            break
        A = (P[:, :, None] * (np.eye(c)[None] - P[:, None, :]))  # (n, c, c)
        H = np.einsum("nab,ni,nj->aibj", A, Xt, Xt).reshape(g.size, g.size) / n + L2 * np.eye(g.size)
        th = th - np.linalg.solve(H, g).reshape(th.shape)
    lin = torch.nn.Linear(X.shape[1], c).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(th[:, :-1]))
        lin.bias.copy_(torch.as_tensor(th[:, -1]))
    return lin, X, y_noisy, is_flipped


def test_representer_ranking_is_the_loss_ranking_only_in_the_degenerate_setting():
    from scrutiny.data_attribution import RepresenterPoints, detect_mislabeled

    model, X, y, is_flipped = _problem()
    kw = {"l2": L2, "methods": ("representer", "loss"), "random_state": 0}
    # head fitted to the labels with the model's own l2: the head is the model's layer, |alpha| = (1 - p_y)/(l2 n)
    same = detect_mislabeled(model, X, y, is_flipped, representer_l2=L2, **kw)
    rho_same = scipy.stats.spearmanr(same.scores["representer"], same.scores["loss"]).statistic
    assert rho_same > 0.9999
    # the reference code's setting: head fitted to the model's predictions with its own regulariser
    paper = detect_mislabeled(model, X, y, is_flipped, representer_l2=0.1, representer_fit_to="predictions", **kw)
    ref = RepresenterPoints(model, l2=0.1, fit_to="predictions").fit(X, y).importance_
    np.testing.assert_allclose(paper.scores["representer"], ref, rtol=1e-10, atol=1e-14)
    rho_paper = scipy.stats.spearmanr(paper.scores["representer"], paper.scores["loss"]).statistic
    assert rho_paper < 0.99, rho_paper
    assert paper.params["representer_fit_to"] == "predictions"
    with pytest.raises(InvalidParameterError, match="representer_fit_to"):
        detect_mislabeled(model, X, y, is_flipped, representer_fit_to="model", **kw)
