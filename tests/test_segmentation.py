"""Tests of scrutiny.data.segmentation: grid and superpixel segments, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.data import (
    grid_segments,
    load_digits,
    n_segments,
    quickshift_segments,
    segment,
    segment_masks,
    slic_segments,
)
from scrutiny.exceptions import InvalidParameterError


def two_tone(h: int = 28, w: int = 28) -> np.ndarray:
    image = np.zeros((h, w))
    image[6:20, 9:15] = 1.0
    image[20:24, 3:25] = 0.6
    return image


def test_grid_segments_exact():
    labels = grid_segments((8, 8), cell=(2, 2))
    expected = np.kron(np.arange(16).reshape(4, 4), np.ones((2, 2), dtype=np.int64))
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int64 and n_segments(labels) == 16
    np.testing.assert_array_equal(grid_segments((1, 8, 8), cell=2), expected)
    uneven = grid_segments((5, 3), cell=(2, 2))
    np.testing.assert_array_equal(uneven, [[0, 0, 1], [0, 0, 1], [2, 2, 3], [2, 2, 3], [4, 4, 5]])
    digits = load_digits().X[:4]
    batch = segment(digits, method="grid", cell=2)
    assert batch.shape == (4, 8, 8)
    np.testing.assert_array_equal(batch[3], expected)
    np.testing.assert_array_equal(n_segments(batch), [16, 16, 16, 16])


@pytest.mark.parametrize("method", ["slic", "quickshift"])
def test_superpixels_are_contiguous_deterministic_and_follow_edges(method):
    image = two_tone()
    labels = segment(image, method=method)
    assert labels.shape == (28, 28) and labels.dtype == np.int64
    s = n_segments(labels)
    np.testing.assert_array_equal(np.unique(labels), np.arange(s))  # contiguous, covers the image
    assert s >= 3
    np.testing.assert_array_equal(segment(image[None], method=method), labels)  # (1, H, W) == (H, W)
    np.testing.assert_array_equal(segment(image, method=method), labels)  # deterministic
    # no superpixel straddles the sharp edges: each is a single tone
    for k in range(s):
        assert np.unique(image[labels == k]).size == 1


def test_segment_batches_and_rgb():
    images = np.stack([two_tone(), two_tone()[::-1]])[:, None]
    labels = segment(images, method="slic", n_segments=20)
    assert labels.shape == (2, 28, 28)
    np.testing.assert_array_equal(labels[0], slic_segments(images[0, 0], n_segments=20))
    rgb = np.stack([two_tone(), 1 - two_tone(), np.full((28, 28), 0.5)])
    for labels in (slic_segments(rgb), quickshift_segments(rgb)):
        assert labels.shape == (28, 28)
        np.testing.assert_array_equal(np.unique(labels), np.arange(n_segments(labels)))
    assert slic_segments(two_tone(), start_label=1).min() == 1


def test_segment_masks_partition_the_image():
    labels = slic_segments(two_tone(), n_segments=30)
    masks = segment_masks(labels)
    assert masks.dtype == bool and masks.shape == (n_segments(labels), 28, 28)
    np.testing.assert_array_equal(masks.sum(axis=0), np.ones((28, 28)))
    for k in range(masks.shape[0]):
        np.testing.assert_array_equal(masks[k], labels == k)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: segment(two_tone(), method="watershed"), "method must be one of 'grid', 'quickshift', 'slic'"),
        (lambda: segment(two_tone(), method="slic", cell=2), r"unknown parameter\(s\) \['cell'\].*n_segments"),
        (lambda: slic_segments(two_tone(), n_segments=0), "n_segments must be an int in"),
        (lambda: slic_segments(two_tone() * 255), r"\[0, 1\].*image / 255"),
        (lambda: quickshift_segments(two_tone() * 255), r"\[0, 1\].*image / 255"),
        (lambda: quickshift_segments(np.zeros((2, 8, 8))), "got 2 channels"),
        (lambda: slic_segments(np.zeros((28, 28, 3))), "channel-last"),
        (lambda: segment(np.full((8, 8), np.nan)), "non-finite"),
        (lambda: grid_segments((8, 8), cell=0), "cell must be a positive int"),
        (lambda: grid_segments(8, cell=2), r"image_shape must be \(H, W\)"),
        (lambda: segment_masks(np.array([[0, 2], [2, 0]])), "label 1 is unused"),
        (lambda: segment_masks(np.zeros((2, 2, 2), dtype=int)), "2-D"),
        (lambda: n_segments(np.zeros((2, 2))), "integer array"),
    ],
)
def test_segmentation_errors(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()


def test_slic_with_explicit_compactness_accepts_any_range():
    labels = slic_segments(two_tone() * 255, compactness=25.0)
    np.testing.assert_array_equal(np.unique(labels), np.arange(n_segments(labels)))
