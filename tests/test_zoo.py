"""Tests of scrutiny.zoo: reference models, deterministic training, safe weight files."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from scrutiny.exceptions import (
    DataFormatError,
    InvalidParameterError,
    ModelError,
    ScrutinyWarning,
)
from scrutiny.zoo import (
    MLP,
    RECIPES,
    LogisticRegression,
    Recipe,
    SmallCNN,
    TrainingHistory,
    accuracy,
    init_parameters,
    load_weights,
    make_model,
    reference_model,
    save_weights,
    train_model,
)

SHAPES = [(1, 8, 8), (1, 28, 28)]



NAMES = ["logistic", "mlp", "cnn"]


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = _params(a), _params(b)
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


@pytest.fixture(scope="module")
def digits():
    from scrutiny.data import load_digits, train_test_split

    return train_test_split(load_digits(), test_size=0.25, random_state=0, stratify=True)


@pytest.fixture
def toy():
    """A small, linearly separable 3-class problem on 1x4x4 'images'."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(120, 1, 4, 4))
    y = np.argmax(X.reshape(120, -1)[:, :3], axis=1)
    return X, y


# --------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_is_classifier_of_features(name, shape):
    model = make_model(name, shape, 10, random_state=0)
    x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        feats = model.features(x)
        again = model.classifier(feats)
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32
    assert feats.shape == (5, model.n_features)
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == model.n_features
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    # flattened inputs give the same logits
    with torch.no_grad():
        torch.testing.assert_close(model(x.reshape(5, -1)), out, rtol=0, atol=0)


def test_feature_widths():
    assert make_model("logistic", (1, 8, 8), 10).n_features == 64
    assert make_model("mlp", (1, 28, 28), 10, hidden=(32, 16)).n_features == 16
    cnn = make_model("cnn", (1, 28, 28), 10, channels=(8, 8, 8), hidden=20)
    assert cnn.n_features == 20 and cnn.fc.in_features == 8 * 3 * 3
    assert make_model("mlp", 30, 2).input_shape == (30,)  # tabular data


@pytest.mark.parametrize("activation", ["relu", "elu", "tanh"])
def test_mlp_activation(activation):
    model = MLP((5,), 3, hidden=(4,), activation=activation)
    x = torch.linspace(-3, 3, 10).reshape(2, 5)
    lin = model.body[0]
    expected = {"relu": torch.relu, "elu": nn.functional.elu, "tanh": torch.tanh}[activation](lin(x))
    torch.testing.assert_close(model.features(x), expected)


def test_model_rejects_wrong_input_shape():
    model = make_model("cnn", (1, 8, 8), 10)
    with pytest.raises(InvalidParameterError, match=r"expects inputs of shape \(n_samples, 1, 8, 8\)"):
        model(torch.zeros(2, 1, 28, 28))


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("name", NAMES)
def test_make_model_is_deterministic(name):
    a = make_model(name, (1, 8, 8), 10, random_state=3)
    b = make_model(name, (1, 8, 8), 10, random_state=3)
    c = make_model(name, (1, 8, 8), 10, random_state=4)
    assert _same(a, b)
    assert not _same(a, c)
    # numpy Generators are accepted and give the same draws as their seed
    d = make_model(name, (1, 8, 8), 10, random_state=np.random.default_rng(3))
    assert _same(a, d)
    # the class constructors share the same init
    cls = {"logistic": LogisticRegression, "mlp": MLP, "cnn": SmallCNN}[name]
    assert _same(a, cls((1, 8, 8), 10, random_state=3))


def test_init_matches_pytorch_default_distribution():
    """kaiming_uniform(a=sqrt(5)) and the bias rule are both U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    model = make_model("mlp", (1, 28, 28), 10, hidden=(256,), random_state=0)
    layer = model.body[0]
    bound = 1 / math.sqrt(784)
    w = layer.weight.detach().numpy().ravel()
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.999 * bound  # 200k draws fill the interval
    # variance of U(-b, b) is b^2 / 3; 200k samples give ~0.3% relative error
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.01
    assert abs(w.mean()) < 0.01 * bound
    b = layer.bias.detach().numpy()
    assert np.abs(b).max() <= bound and b.std() > 0.4 * bound
    conv = make_model("cnn", (1, 8, 8), 10).conv[3]  # 16 -> 32 channels, 3x3: fan_in 144
    assert np.abs(conv.weight.detach().numpy()).max() <= 1 / 12
    assert np.abs(conv.weight.detach().numpy()).max() > 0.99 / 12


@pytest.mark.parametrize("name", NAMES)
def test_init_is_bit_identical_to_pytorch_default(name):
    """Oracle: PyTorch's own layer constructors under torch.manual_seed(seed) draw the same numbers."""
    from scrutiny._validation import check_random_state

    seed = int(check_random_state(7).integers(0, 2**63 - 1))  # how the zoo seeds its torch.Generator
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if name == "logistic":
            ref = [nn.Linear(64, 10)]
        elif name == "mlp":
            ref = [nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 10)]
        else:
            ref = [nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1), nn.Linear(128, 128), nn.Linear(128, 10)]
    model = make_model(name, (1, 8, 8), 10, random_state=7)
    mine = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(mine) == len(ref)
    for a, b in zip(ref, mine):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_global_rng_untouched_by_make_model_and_train_model(toy):
    X, y = toy
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()
    for name in NAMES:
        model = make_model(name, (1, 4, 4), 3, random_state=0, **({"channels": (4,)} if name == "cnn" else {}))
        train_model(model, X, y, epochs=2, minibatch_size=16, random_state=0, X_val=X[:10], y_val=y[:10])
    init_parameters(model, random_state=5)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]


def test_init_parameters_refuses_unknown_layers():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(InvalidParameterError, match="does not know the default initialisation of Scaled"):
        init_parameters(nn.Sequential(nn.Linear(3, 3), Scaled()))


def test_init_parameters_on_one_layer_only():
    model = make_model("mlp", (1, 8, 8), 10, random_state=0)
    before = _params(model)
    init_parameters(model.classifier, random_state=1)
    after = _params(model)
    assert torch.equal(before["body.0.weight"], after["body.0.weight"])
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_model("resnet", (1, 8, 8), 10), r"name must be one of 'cnn', 'logistic', 'mlp'; got 'resnet'"),
        (lambda: make_model("mlp", (1, 8, 8), 1), r"n_classes must be an int in \[2, inf\]; got 1"),
        (lambda: make_model("mlp", (1, 0, 8), 10), r"input_shape must be a tuple of 1 to 3 positive ints"),
        (lambda: make_model("mlp", (1, 8, 8), 10, hidden=()), r"hidden must be a non-empty sequence"),
        (lambda: make_model("mlp", (1, 8, 8), 10, activation="gelu"), r"activation must be one of"),
        (lambda: make_model("cnn", (1, 3, 3), 10), r"height and width >= 4"),
        (lambda: make_model("cnn", (64,), 10), r"input_shape must be \(channels, height, width\)"),
        (lambda: make_model("logistic", (64,), 10, hidden=(3,)), r"unexpected option\(s\) \['hidden'\] for 'logistic'"),
        (lambda: make_model("cnn", (1, 8, 8), 10, hiden=3), r"\['hiden'\] for 'cnn' \(SmallCNN\); it accepts \['channels', 'hidden'\]"),
        (lambda: make_model("cnn", (1, 8, 8), 10, hidden=0), r"hidden must be an int in \[1, inf\]; got 0"),
        (lambda: make_model("cnn", (1, 8, 8), 10, random_state=-1), r"random_state must be"),
    ],
)
def test_make_model_errors(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()


# --------------------------------------------------------------------------- training


def test_training_is_deterministic(toy):
    X, y = toy
    runs = []
    for seed in (0, 0, 1):
        model = make_model("mlp", (1, 4, 4), 3, hidden=(8,), random_state=0)
        hist = train_model(model, X, y, epochs=3, minibatch_size=16, random_state=seed)
        runs.append((model, hist))
    assert _same(runs[0][0], runs[1][0])
    assert runs[0][1].train_loss == runs[1][1].train_loss
    assert not _same(runs[0][0], runs[2][0])  # a different shuffling seed changes the weights


def test_training_history_and_callback(toy):
    X, y = toy
    model = make_model("logistic", (1, 4, 4), 3)
    calls = []

    def callback(epoch, m):
        calls.append((epoch, m.training, float(m.classifier.weight.detach().sum())))

    hist = train_model(model, X, y, epochs=4, lr=0.05, minibatch_size=32, X_val=X[:40], y_val=y[:40], callback=callback)
    assert [c[0] for c in calls] == [1, 2, 3, 4]
    assert not any(c[1] for c in calls)  # eval mode during the callback
    assert len({c[2] for c in calls}) == 4  # the weights change every epoch
    assert len(hist.train_loss) == len(hist.train_accuracy) == len(hist.val_accuracy) == 4
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.final_train_accuracy == pytest.approx(accuracy(model, X, y))
    assert hist.final_val_accuracy == hist.val_accuracy[-1] == pytest.approx(accuracy(model, X[:40], y[:40]))
    assert hist.params["lr"] == 0.05 and hist.to_dict()["epochs"] == 4
    assert not model.training


def test_batch_size_is_a_deprecated_name_of_minibatch_size(toy):
    X, y = toy
    a = make_model("mlp", (1, 4, 4), 3, hidden=(8,), random_state=0)
    b = make_model("mlp", (1, 4, 4), 3, hidden=(8,), random_state=0)
    new = train_model(a, X, y, epochs=2, minibatch_size=16, random_state=0)
    with pytest.warns(DeprecationWarning, match=r"use train_model\(minibatch_size=\.\.\.\)"):
        old = train_model(b, X, y, epochs=2, batch_size=16, random_state=0)
    assert _same(a, b) and old.train_loss == new.train_loss  # the same 16-sample mini-batches
    assert old.params["minibatch_size"] == 16 and "batch_size" not in old.params
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidParameterError, match="pass minibatch_size only"):
        train_model(b, X, y, epochs=1, minibatch_size=8, batch_size=16)


def test_training_history_saves_and_loads(toy, tmp_path):
    import dataclasses

    from scrutiny import load_result

    X, y = toy
    model = make_model("logistic", (1, 4, 4), 3)
    hist = train_model(model, X, y, epochs=3, lr=0.05, X_val=X[:40], y_val=y[:40])
    with pytest.raises(dataclasses.FrozenInstanceError):
        hist.epochs = 4
    back = load_result(hist.save(tmp_path / "history"))
    assert isinstance(back, TrainingHistory)
    for f in dataclasses.fields(TrainingHistory):
        assert getattr(back, f.name) == getattr(hist, f.name), f.name
    assert TrainingHistory.from_dict(hist.to_dict()).train_loss == hist.train_loss
    # without validation data the optional fields stay None
    plain = load_result(train_model(model, X, y, epochs=1).save(tmp_path / "plain.npz"))
    assert plain.val_accuracy is None and plain.final_val_accuracy is None


def test_model_left_in_eval_mode_when_callback_raises(toy):
    X, y = toy
    model = make_model("logistic", (1, 4, 4), 3)

    def boom(epoch, m):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        train_model(model, X, y, epochs=2, callback=boom)
    assert not model.training


def test_sgd_and_cosine_schedule_train(toy):
    X, y = toy
    for kwargs in ({"optimizer": "sgd", "lr": 0.5, "momentum": 0.9}, {"lr": 0.05, "lr_schedule": "cosine"}):
        model = make_model("logistic", (1, 4, 4), 3)
        hist = train_model(model, X, y, epochs=15, minibatch_size=16, **kwargs)
        assert hist.final_train_accuracy > 0.9, kwargs


def test_train_any_module(toy):
    """A plain nn.Module (no input_shape / n_classes attributes) trains too; n_classes is inferred."""
    X, y = toy
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    init_parameters(model, random_state=0)
    hist = train_model(model, X, y, epochs=10, lr=0.05)
    assert hist.final_train_accuracy > 0.8
    with pytest.raises(InvalidParameterError, match=r"y must lie in \[0, 2\]"):
        train_model(model, X, y + 1)


def test_diverging_training_raises_model_error(toy):
    X, y = toy
    model = make_model("logistic", (1, 4, 4), 3)
    with pytest.raises(ModelError, match=r"the training loss became nan in epoch 1, batch \d+ \(lr=1e\+30\)\. Lower lr"):
        train_model(model, X * 1e30, y, epochs=3, lr=1e30, optimizer="sgd")
    assert not model.training

    class NaNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 3)

        def forward(self, x):
            return self.lin(x.flatten(1)) * float("nan")

    with pytest.raises(ModelError, match=r"loss became nan in epoch 1, batch 1"):
        train_model(NaNModel(), X, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, r"train_model: epochs must be an int in \[1, inf\]; got 0\. Train for at least 1 epoch"),
        ({"epochs": 2.5}, r"epochs must be an int in \[1, inf\]; got 2\.5"),
        ({"lr": -1e-3}, r"lr must be a float in \(0, inf\); got -0\.001\. 1e-3 is typical"),
        ({"minibatch_size": 0}, r"minibatch_size must be an int in \[1, inf\]; got 0"),
        ({"weight_decay": -1.0}, r"weight_decay must be a float in \[0, inf\]; got -1\.0"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of 'adam', 'sgd'; got 'rmsprop'"),
        ({"lr_schedule": "step"}, r"lr_schedule must be one of 'constant', 'cosine'; got 'step'"),
        ({"momentum": 1.5}, r"momentum must be a float in \[0, 1\); got 1\.5"),
        ({"random_state": "zero"}, r"random_state must be an int >= 0"),
        ({"progress": "yes"}, r"progress must be a bool"),
        ({"callback": 3}, r"callback must be a callable or None; got 3"),
    ],
)
def test_train_model_bad_parameters(toy, kwargs, match):
    X, y = toy
    model = make_model("logistic", (1, 4, 4), 3)
    with pytest.raises(InvalidParameterError, match=match):
        train_model(model, X, y, **kwargs)


def test_train_model_bad_data(toy):
    X, y = toy
    model = make_model("logistic", (1, 4, 4), 3)
    with pytest.raises(InvalidParameterError, match=r"X must have shape \(n_samples, 1, 4, 4\).*got \(120, 1, 8, 2\)"):
        train_model(model, X.reshape(120, 1, 8, 2), y)
    with pytest.raises(InvalidParameterError, match=r"X must have one row per sample"):
        train_model(model, X.ravel(), y)
    bad = X.copy()
    bad[3, 0, 1, 1] = np.nan
    with pytest.raises(InvalidParameterError, match=r"X contains 1 non-finite value\(s\) \(first: NaN at index \(3, 0, 1, 1\)\)"):
        train_model(model, bad, y)
    with pytest.raises(InvalidParameterError, match=r"X must contain at least 1 sample"):
        train_model(model, X[:0], y[:0])
    with pytest.raises(InvalidParameterError, match=r"y must have one label per row of X \(120\); got 119"):
        train_model(model, X, y[:-1])
    with pytest.raises(InvalidParameterError, match=r"y must lie in \[0, 2\] \(the model has 3 outputs\); got 3"):
        train_model(model, X, np.where(y == 2, 3, y))
    with pytest.raises(InvalidParameterError, match=r"y must lie in \[0, 2\].*got -1"):
        train_model(model, X, y - 1)
    with pytest.raises(InvalidParameterError, match=r"y must hold integer class labels; got non-integer values such as 0\.5"):
        train_model(model, X, y + 0.5)
    with pytest.raises(InvalidParameterError, match=r"y must have 1 dimensions"):
        train_model(model, X, y[:, None])
    with pytest.raises(InvalidParameterError, match=r"X_val and y_val must be given together; got X_val only"):
        train_model(model, X, y, X_val=X)
    with pytest.raises(InvalidParameterError, match=r"y_val must have one label per row of X_val \(120\); got 10"):
        train_model(model, X, y, X_val=X, y_val=y[:10])
    with pytest.raises(InvalidParameterError, match=r"model must be a torch.nn.Module; got 'not a model'"):
        train_model("not a model", X, y)
    # float labels holding integers and torch tensors are accepted
    train_model(model, torch.as_tensor(X), y.astype(float), epochs=1)


def test_accuracy_matches_manual(toy):
    X, y = toy
    model = make_model("mlp", (1, 4, 4), 3, random_state=2)
    with torch.no_grad():
        pred = model(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    assert accuracy(model, X, y, batch_size=7) == pytest.approx(np.mean(pred == y))
    model.train()
    accuracy(model, X, y)
    assert model.training  # the mode is restored
    with pytest.raises(InvalidParameterError, match=r"batch_size must be an int in \[1, inf\]; got 0"):
        accuracy(model, X, y, batch_size=0)


# --------------------------------------------------------------------------- weight files


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(tmp_path, name):
    model = make_model(name, (1, 8, 8), 10, random_state=0)
    path = save_weights(model, tmp_path / "sub" / "w.pt")
    other = make_model(name, (1, 8, 8), 10, random_state=1)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(model(x), other(x))
    assert load_weights(other, path) is other
    assert not other.training
    torch.testing.assert_close(model(x), other(x), rtol=0, atol=0)
    # the file is readable with the safe unpickler alone
    payload = torch.load(path, weights_only=True, map_location="cpu")
    assert payload["architecture"]["name"] == name


def test_load_bare_state_dict(tmp_path):
    model = make_model("mlp", (1, 8, 8), 10, random_state=0)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    other = load_weights(make_model("mlp", (1, 8, 8), 10, random_state=1), tmp_path / "bare.pt")
    assert _same(model, other)


def test_load_into_wrong_architecture(tmp_path):
    path = save_weights(make_model("cnn", (1, 8, 8), 10), tmp_path / "cnn.pt")
    with pytest.raises(InvalidParameterError, match=r"do not fit MLP.*missing from the file: \['body.0.weight'.*saved from \{'name': 'cnn'"):
        load_weights(make_model("mlp", (1, 8, 8), 10), path)
    with pytest.raises(InvalidParameterError, match=r"shape mismatch: \['fc.weight: file \(128, 128\) vs model \(128, 1568\)'"):
        load_weights(make_model("cnn", (1, 28, 28), 10), path)
    with pytest.raises(InvalidParameterError, match=r"path must be an existing weight file"):
        load_weights(make_model("cnn", (1, 8, 8), 10), tmp_path / "missing.pt")


class _Payload:
    """Something torch.load(weights_only=True) must refuse to unpickle."""


def test_load_refuses_arbitrary_pickles(tmp_path):
    torch.save({"state_dict": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(DataFormatError, match=r"not a readable weights file: it holds Python objects other than tensors \(Unsupported global: GLOBAL [\w.]*_Payload\).*arbitrary pickles are refused"):
        load_weights(make_model("logistic", (1, 8, 8), 10), tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match=r"not a readable weights file"):
        load_weights(make_model("logistic", (1, 8, 8), 10), tmp_path / "junk.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(DataFormatError, match=r"does not hold a state_dict"):
        load_weights(make_model("logistic", (1, 8, 8), 10), tmp_path / "list.pt")


# --------------------------------------------------------------------------- reference models


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo-cache")


def test_reference_cnn_on_digits(cache_dir, digits):
    """The requirement: the reference CNN beats 97% test accuracy on the fixed digits split."""
    model, info = reference_model("cnn", "digits", cache_dir=cache_dir)
    assert info["test_accuracy"] > 0.97
    assert info["n_train"] == 1347 and info["n_test"] == 450
    assert not info["from_cache"]
    _, test = digits
    np.testing.assert_array_equal(info["test"].y, test.y)  # the documented split
    assert accuracy(model, test.X, test.y) == info["test_accuracy"]
    assert isinstance(model, SmallCNN) and not model.training
    # the second call loads the cached weights
    cached, info2 = reference_model("cnn", "digits", cache_dir=cache_dir)
    assert info2["from_cache"] and info2["cache_path"] == info["cache_path"]
    assert _same(model, cached)
    assert info2["test_accuracy"] == info["test_accuracy"]
    assert info2["train_seconds"] == info["train_seconds"]


def test_reference_cache_key_and_corrupt_entry(tmp_path):
    _, info = reference_model("logistic", "digits", cache_dir=tmp_path)
    assert info["test_accuracy"] > 0.9
    recipe = RECIPES[("logistic", "digits")]
    assert Recipe(**{**vars(recipe), "epochs": recipe.epochs + 1}).key() != recipe.key()
    assert recipe.key() in info["cache_path"] and "seed0" in info["cache_path"]
    with open(info["cache_path"], "wb") as f:
        f.write(b"garbage")
    with pytest.warns(ScrutinyWarning, match="unreadable cache entry"):
        _, again = reference_model("logistic", "digits", cache_dir=tmp_path)
    assert not again["from_cache"] and again["test_accuracy"] == info["test_accuracy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, third = reference_model("logistic", "digits", cache_dir=tmp_path)
    assert third["from_cache"]


def test_recipe_keys_survive_the_minibatch_size_rename():
    # keys computed before batch_size became minibatch_size: weights cached then stay valid
    before = {("logistic", "digits"): "c69c59cf4a0a", ("mlp", "digits"): "9dc5badf48ae",
              ("cnn", "digits"): "8ac4f06d9a18", ("cnn", "mnist"): "96922637887e"}
    assert {key: RECIPES[key].key() for key in before} == before
    assert RECIPES[("mlp", "digits")].minibatch_size == 32
    changed = Recipe(**{**vars(RECIPES[("mlp", "digits")]), "minibatch_size": 64})
    assert changed.key() != RECIPES[("mlp", "digits")].key()  # the mini-batch is still part of the key


def test_reference_model_env_cache_dir(cache_dir, monkeypatch):
    monkeypatch.setenv("SCRUTINY_CACHE_DIR", str(cache_dir))
    _, info = reference_model("cnn", "digits")  # trained by test_reference_cnn_on_digits, or now
    assert info["cache_path"].startswith(str(cache_dir))
    _, info = reference_model("cnn", "digits")
    assert info["from_cache"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "svm"}, r"name must be one of 'cnn', 'logistic', 'mlp'; got 'svm'"),
        ({"dataset": "cifar10"}, r"dataset must be one of 'digits', 'fashion-mnist', 'mnist'; got 'cifar10'"),
        ({"random_state": np.random.default_rng(0)}, r"random_state must be an int in \[0, inf\].*cache key"),
    ],
)
def test_reference_model_errors(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        reference_model(**{"name": "cnn", **kwargs})


@pytest.mark.slow
@pytest.mark.parametrize("dataset, target", [("mnist", 0.98), ("fashion-mnist", 0.88)])
def test_reference_cnn_on_image_files(tmp_path, dataset, target):
    try:
        _, info = reference_model("cnn", dataset, cache_dir=tmp_path)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert info["test_accuracy"] > target
