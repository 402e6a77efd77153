"""XdynNet targets: a 1-D y for a one-output module, shape mismatches, GP data dtypes."""

import warnings

import numpy as np
import pytest
import torch

from xdyn.nn import MLP, XdynNet
from xdyn.nn.gp import ExactGPNet, ExactMultiOutputGP


def _data(n=96):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, 2)).astype("float32")
    return X, (X[:, :1] * X[:, 1:]).astype("float32")


def _net(out_features=1, **kwargs):
    return XdynNet(MLP, module__in_features=2, module__out_features=out_features,
                   module__hidden=8, lr=1e-2, max_epochs=3, batch_size=32, random_state=0,
                   **kwargs)


def test_1d_y_of_a_one_output_module_trains_as_its_column():
    X, y = _data()
    column = _net().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's broadcast warning would be one
        flat = _net().fit(X, y[:, 0])
    assert flat.history[:, "train_loss"] == column.history[:, "train_loss"]
    np.testing.assert_array_equal(flat.predict(X), column.predict(X))


def test_column_y_of_a_1d_output_module_trains_as_its_vector():
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def forward(self, x):
            return self.lin(x)[:, 0]

    X, y = _data()
    kwargs = dict(lr=1e-2, max_epochs=3, batch_size=32, random_state=0)
    a = XdynNet(Flat, **kwargs).fit(X, y)
    b = XdynNet(Flat, **kwargs).fit(X, y[:, 0])
    assert a.history[:, "train_loss"] == b.history[:, "train_loss"]


@pytest.mark.parametrize("out_features, y_cols", [(1, 2), (2, 3), (3, 1)])
def test_target_shape_mismatch_names_both_shapes(out_features, y_cols):
    X, _ = _data()
    y = np.zeros((len(X), y_cols), dtype="float32")
    with pytest.raises(ValueError, match=rf"output has shape \(32, {out_features}\) "
                                         rf"and the target y \(32, {y_cols}\)"):
        _net(out_features).fit(X, y)


def test_loss_of_other_criteria_left_to_them():
    X, y = _data()
    labels = (y[:, 0] > 0).astype("int64")  # class indices (n,) against logits (n, 2)
    net = _net(2, criterion=torch.nn.CrossEntropyLoss).fit(X, labels)
    assert net.predict(X).shape == (len(X), 2)


def test_exact_gp_casts_float64_data_to_the_nets_dtype():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, (40, 1))
    y = np.hstack([np.sin(2 * X), X ** 2])
    kwargs = dict(module__n_features=1, module__n_outputs=2, lr=0.1, max_epochs=5,
                  random_state=0)
    as64 = ExactGPNet(ExactMultiOutputGP, **kwargs).fit(X, y)
    as32 = ExactGPNet(ExactMultiOutputGP, **kwargs).fit(X.astype("float32"), y.astype("float32"))
    assert as64.module_.train_inputs[0].dtype == torch.float32
    np.testing.assert_array_equal(as64.predict(X[:5]), as32.predict(X[:5].astype("float32")))


@pytest.mark.parametrize("n_points", [48, 40])
def test_exact_gp_predicts_in_several_batches_as_in_one(n_points):
    # each batch's posterior is (n_outputs, n_batch); skorch joined them along the first
    # axis before the transpose: 48 points in batches of 16 came back (16, 6), 40 failed
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, (60, 1))
    y = np.hstack([np.sin(2 * X), X ** 2])
    kwargs = dict(module__n_features=1, module__n_outputs=2, lr=0.1, max_epochs=5,
                  random_state=0, dtype="float64")
    whole = ExactGPNet(ExactMultiOutputGP, **kwargs).fit(X, y)
    batched = ExactGPNet(ExactMultiOutputGP, iterator_valid__batch_size=16, **kwargs).fit(X, y)
    X_new = np.linspace(-1.5, 1.5, n_points)[:, None]
    for got, want in zip(batched.predict(X_new, return_std=True),
                         whole.predict(X_new, return_std=True)):
        assert got.shape == (n_points, 2)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batched.predict(X_new), whole.predict(X_new), rtol=1e-10)
