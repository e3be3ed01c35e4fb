"""CW-DeepNNK: the leave-one-out NNK error per channel (Bonet et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.exceptions import InvalidParameterError
from scrutiny.nnk import NNK, channelwise_loo_error


@pytest.fixture(scope="module")
def channels():
    """(n, 3, 2, 2) features: channel 0 separates the 3 classes (tight clusters), channel 1 is
    noise independent of the labels, channel 2 is dead (all zeros)."""
    rng = np.random.default_rng(0)
    n = 150
    y = np.repeat(np.arange(3), n // 3)
    centers = np.abs(rng.normal(size=(3, 4))) * 3 + np.eye(3, 4) * 5
    F = np.zeros((n, 3, 2, 2))
    F[:, 0] = (centers[y] + 0.05 * rng.normal(size=(n, 4))).reshape(n, 2, 2)
    F[:, 1] = np.abs(rng.normal(size=(n, 2, 2)))
    return F, y


def test_informative_channel_has_low_error_noise_channel_chance_dead_channel_nan(channels):
    F, y = channels
    err = channelwise_loo_error(F, y, k=10)
    assert err.shape == (3,)
    assert err[0] == 0.0
    assert 0.45 < err[1] < 0.85  # chance is 2/3 for 3 balanced classes
    assert np.isnan(err[2])


def test_each_channel_equals_deepnnk_on_that_channel_alone(channels):
    F, y = channels
    idx = np.arange(0, 150, 3)
    err = channelwise_loo_error(F, y, k=10, channels=[1, 0], indices=idx)
    for j, c in enumerate([1, 0]):
        alone = NNK(k=10).fit(F[:, c].reshape(len(F), -1), y).loo_error(idx).nnk_error
        assert err[j] == alone


def test_errors_name_the_parameter(channels):
    F, y = channels
    with pytest.raises(InvalidParameterError, match="n_channels"):
        channelwise_loo_error(F[:, 0, 0, 0], y)
    with pytest.raises(InvalidParameterError, match=r"channels must lie in \[0, 2\]"):
        channelwise_loo_error(F, y, channels=[3])
    with pytest.raises(InvalidParameterError, match="k=200"):
        channelwise_loo_error(F, y, k=200)
    with pytest.raises(InvalidParameterError, match="one label per row"):
        channelwise_loo_error(F, y[:-1])
    with pytest.raises(InvalidParameterError, match="kernel"):
        channelwise_loo_error(F, y, kernel="rbf")
