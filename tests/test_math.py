"""The mathematics of ``backprop_rs``, checked against independent computations.

Every expected value here comes from something other than the code under test:
central finite differences the test computes itself, a forward pass and loss
formulas written below in plain numpy, networks worked out by hand (the
derivations are in the comments), a hand-written ``torch.optim.SGD`` update, or
the closed forms of the learning-rate schedules. The Rust core is also compared
with the numpy reference ``backprop_rs.reference`` step for step.

Conventions (see DESIGN.md): ``W`` is ``(in, out)``, samples are rows, every
loss is the mean over the batch (and over outputs for element-wise losses), SGD
is ``torch.optim.SGD`` with ``dampening=0`` and weight decay on biases too.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import reference

ACTIVATIONS = [
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "softplus",
    "softmax",
]
REGRESSION_LOSSES = ["mse", "mae", "huber"]
# Activations with a kink (or a change of curvature) at z = 0.
KINKED = ("relu", "leaky_relu", "elu")
ENGINES = [
    pytest.param(bp.Sequential, id="rust"),
    pytest.param(reference.Sequential, id="reference"),
]
MARGIN = 1e-3
EPS = 1e-6

_erf = np.vectorize(math.erf, otypes=[np.float64])


# An independent numpy forward pass and the loss formulas ----------------------


def np_activation(name: str, z: np.ndarray) -> np.ndarray:
    """Textbook forms, written without the package's stable rewrites."""
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "elu":
        return np.where(z > 0, z, np.exp(np.minimum(z, 0.0)) - 1.0)
    if name == "gelu":
        return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
    if name == "softplus":
        return np.log(1.0 + np.exp(z))
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(name)


def np_forward(weights, acts, X):
    """Pre-activations and activations of every layer: ``z = a W + b``."""
    zs, a_s = [], []
    a = np.asarray(X, dtype=np.float64)
    for (w, b), act in zip(weights, acts):
        z = a @ w + b
        a = np_activation(act, z)
        zs.append(z)
        a_s.append(a)
    return zs, a_s


def np_loss(loss: str, z: np.ndarray, o: np.ndarray, y: np.ndarray) -> float:
    """PyTorch's ``reduction="mean"`` values, from the output logits ``z`` and
    activations ``o``."""
    if loss == "cross_entropy":
        m = z.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
        if y.ndim == 1:
            return float(np.mean(lse - z[np.arange(len(y)), y]))
        return float(np.mean(np.sum(y * (lse[:, None] - z), axis=1)))
    if loss == "binary_cross_entropy":
        return float(np.mean(-(y * np.log(o) + (1 - y) * np.log(1 - o))))
    r = o - y
    if loss == "mse":
        return float(np.mean(r**2))
    if loss == "mae":
        return float(np.mean(np.abs(r)))
    if loss == "huber":
        return float(np.mean(np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)))
    raise AssertionError(loss)


def fd_gradients(model, X, y, eps: float = EPS):
    """Central differences of ``evaluate()["loss"]``, one parameter at a time,
    moved through ``set_weights``."""
    base = [(w.copy(), b.copy()) for w, b in model.get_weights()]
    out = []
    for l in range(len(base)):
        pair = []
        for kind in (0, 1):
            flat = base[l][kind].reshape(-1)
            g = np.zeros(flat.size)
            for i in range(flat.size):
                original = flat[i]
                flat[i] = original + eps
                model.set_weights(base)
                plus = model.evaluate(X, y)["loss"]
                flat[i] = original - eps
                model.set_weights(base)
                minus = model.evaluate(X, y)["loss"]
                flat[i] = original
                g[i] = (plus - minus) / (2 * eps)
            pair.append(g.reshape(base[l][kind].shape))
        out.append(tuple(pair))
    model.set_weights(base)
    return out


def build(engine, specs, loss, weights=None, dtype="float64", seed=0):
    """A model of layers ``specs = [(in, out, activation), ...]``."""
    model = engine(
        [bp.Dense(i, o, activation=a) for i, o, a in specs],
        loss=loss,
        dtype=dtype,
        seed=seed,
    )
    if weights is not None:
        model.set_weights(weights)
    return model


# 1. Gradients of every activation x loss pair ----------------------------------


def gradcheck_case(hidden: str, output: str, loss: str, targets: str = "dense"):
    """Data, weights and targets for a 3-4-k network on 7 samples (odd, so that
    no MAE mean of signs is exactly 0), chosen (by trying local seeds in order)
    so that no kinked pre-activation, MAE residual or Huber ``|r| - 1`` is
    within ``MARGIN`` of its kink."""
    k = 3 if loss == "cross_entropy" else 2
    acts = [hidden, output]
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        X = rng.normal(size=(7, 3))
        weights = [
            (rng.normal(0, 0.8, (3, 4)), rng.normal(0, 0.3, 4)),
            (rng.normal(0, 0.8, (4, k)), rng.normal(0, 0.3, k)),
        ]
        if loss == "cross_entropy" and targets == "labels":
            y = np.array([0, 1, 2, 0, 2, 1, 1])
        elif loss == "cross_entropy":
            y = rng.dirichlet(np.ones(k), size=7)
        elif loss == "binary_cross_entropy":
            y = np.array(
                [[0, 1], [1, 1], [0.3, 0.8], [1, 0], [0, 0], [0.5, 1], [0.9, 0.1]]
            )
        else:
            y = rng.normal(0, 1.5, (7, k))
        zs, a_s = np_forward(weights, acts, X)
        ok = True
        if hidden in KINKED:
            ok &= bool(np.all(np.abs(zs[0]) > MARGIN))
        if output in KINKED:
            ok &= bool(np.all(np.abs(zs[1]) > MARGIN))
        if loss == "mae":
            ok &= bool(np.all(np.abs(a_s[1] - y) > MARGIN))
        if loss == "huber":
            r = np.abs(a_s[1] - y)
            ok &= bool(np.all(np.abs(r - 1) > MARGIN))
            # Both branches of the Huber loss are exercised.
            ok &= bool(np.any(r < 1) and np.any(r > 1))
        if ok:
            return [(3, 4, hidden), (4, k, output)], weights, X, y
    raise AssertionError("no data away from the kinks")


def assert_gradients_match_fd(model, X, y):
    loss, grads = model.loss_and_gradients(X, y)
    fd = fd_gradients(model, X, y)
    for (dw, db), (fw, fb) in zip(grads, fd):
        np.testing.assert_allclose(dw, fw, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(db, fb, rtol=1e-6, atol=1e-9)
    # The package's own checker agrees on the same case.
    assert bp.check_gradients(model, X, y) < 1e-6
    return loss


class _SkewedEngine(bp.reference._Network):
    """An engine whose analytic gradients are 1% too large."""

    def loss_and_gradients(self, x, labels=None, targets=None):
        loss, grads = super().loss_and_gradients(x, labels, targets)
        return loss, [(1.01 * w, 1.01 * b) for w, b in grads]


class _SkewedSequential(bp.reference.Sequential):
    _engine = _SkewedEngine


def test_check_gradients_reports_a_one_percent_error():
    # |1.01 g - g| / (1.01 |g| + |g|) = 0.01 / 2.01 for every non-zero gradient.
    X, y = bp.datasets.load_digits()
    model = _SkewedSequential(
        [bp.Dense(64, 5, activation="tanh"), bp.Dense(5, 10, activation="softmax")],
        loss="cross_entropy",
        seed=0,
    )
    assert abs(bp.check_gradients(model, X[:20], y[:20]) - 0.01 / 2.01) < 1e-6


def assert_loss_matches_numpy(model, specs, weights, X, y, loss_name, loss):
    zs, a_s = np_forward(weights, [a for _, _, a in specs], X)
    expected = np_loss(loss_name, zs[-1], a_s[-1], y)
    assert loss == pytest.approx(expected, rel=1e-12, abs=1e-14)
    assert model.evaluate(X, y)["loss"] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(model.predict(X), a_s[-1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss_name", REGRESSION_LOSSES)
@pytest.mark.parametrize("output", ACTIVATIONS)
@pytest.mark.parametrize("hidden", ACTIVATIONS)
def test_regression_gradients_match_central_differences_and_loss_formula(
    hidden, output, loss_name
):
    specs, weights, X, y = gradcheck_case(hidden, output, loss_name)
    model = build(bp.Sequential, specs, loss_name, weights)
    loss = assert_gradients_match_fd(model, X, y)
    assert_loss_matches_numpy(model, specs, weights, X, y, loss_name, loss)


@pytest.mark.parametrize("hidden", ACTIVATIONS)
def test_bce_sigmoid_gradients_match_central_differences_and_loss_formula(hidden):
    specs, weights, X, y = gradcheck_case(hidden, "sigmoid", "binary_cross_entropy")
    model = build(bp.Sequential, specs, "binary_cross_entropy", weights)
    loss = assert_gradients_match_fd(model, X, y)
    assert_loss_matches_numpy(model, specs, weights, X, y, "binary_cross_entropy", loss)


@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("hidden", ACTIVATIONS)
def test_ce_softmax_gradients_match_central_differences_and_loss_formula(
    hidden, targets
):
    specs, weights, X, y = gradcheck_case(hidden, "softmax", "cross_entropy", targets)
    model = build(bp.Sequential, specs, "cross_entropy", weights)
    loss = assert_gradients_match_fd(model, X, y)
    assert_loss_matches_numpy(model, specs, weights, X, y, "cross_entropy", loss)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64])
def test_ce_integer_labels_of_any_dtype_equal_one_hot_targets(dtype):
    specs, weights, X, y = gradcheck_case("tanh", "softmax", "cross_entropy", "labels")
    model = build(bp.Sequential, specs, "cross_entropy", weights)
    one_hot = np.eye(3)[y]
    loss_l, grads_l = model.loss_and_gradients(X, y.astype(dtype))
    loss_d, grads_d = model.loss_and_gradients(X, one_hot)
    assert loss_l == pytest.approx(loss_d, rel=1e-13)
    for (a, b), (c, d) in zip(grads_l, grads_d):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-15)


# 2. Tiny networks worked out by hand -------------------------------------------


def assert_exact(got, expected):
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_hand_derived_softmax_ce_with_labels_two_samples(engine):
    # 2-2-2, identity hidden with W1 = I, b1 = 0, so h = x.
    # W2 = [[1, -1], [0.5, 2]], b2 = 0.
    # Sample 1: x = [1, 0], label 0 -> z = [1, -1], p0 = sigmoid(2),
    #   loss1 = log(1 + e^-2); dL/dz = p - e0 = [-s, s] with s = sigmoid(-2).
    # Sample 2: x = [0, 1], label 1 -> z = [0.5, 2], p1 = sigmoid(1.5),
    #   loss2 = log(1 + e^-1.5); dL/dz = [t, -t] with t = sigmoid(-1.5).
    # Batch mean: delta2 = [[-s, s], [t, -t]] / 2.
    # dW2 = h^T delta2 = [[-s, s], [t, -t]] / 2, db2 = [t - s, s - t] / 2.
    # delta1 = delta2 W2^T: row 1 [-s - s, -0.5 s + 2 s] / 2 = [-s, 0.75 s],
    #   row 2 [t + t, 0.5 t - 2 t] / 2 = [t, -0.75 t].
    # dW1 = x^T delta1 = delta1 (x = I), db1 = [t - s, 0.75 (s - t)].
    s = 1 / (1 + math.exp(2))
    t = 1 / (1 + math.exp(1.5))
    weights = [
        (np.eye(2), np.zeros(2)),
        (np.array([[1.0, -1.0], [0.5, 2.0]]), np.zeros(2)),
    ]
    model = build(
        engine, [(2, 2, "identity"), (2, 2, "softmax")], "cross_entropy", weights
    )
    loss, ((dw1, db1), (dw2, db2)) = model.loss_and_gradients(np.eye(2), [0, 1])
    assert loss == pytest.approx(
        (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1.5))) / 2, abs=1e-12
    )
    assert_exact(dw2, [[-s / 2, s / 2], [t / 2, -t / 2]])
    assert_exact(db2, [(t - s) / 2, (s - t) / 2])
    assert_exact(dw1, [[-s, 0.75 * s], [t, -0.75 * t]])
    assert_exact(db1, [t - s, 0.75 * (s - t)])


@pytest.mark.parametrize("engine", ENGINES)
def test_hand_derived_sigmoid_bce_with_soft_target(engine):
    # 2-2-1, identity hidden: x = [1, 2], W1 = [[1, 0], [0, -1]], b1 = [0, 0.5]
    #   -> h = [1, -2 + 0.5] = [1, -1.5].
    # W2 = [[2], [1]], b2 = [0.25] -> z = 2 - 1.5 + 0.25 = 0.75, y = 0.25.
    # BCE = -(y log p + (1 - y) log(1 - p)) = softplus(z) - y z
    #     = log(1 + e^0.75) - 0.1875.
    # dL/dz = sigmoid(0.75) - 0.25 = d.
    # dW2 = h^T d = [[d], [-1.5 d]], db2 = [d].
    # delta1 = d W2^T = [2 d, d]; dW1 = x^T delta1 = [[2d, d], [4d, 2d]];
    # db1 = [2 d, d].
    d = 1 / (1 + math.exp(-0.75)) - 0.25
    weights = [
        (np.array([[1.0, 0.0], [0.0, -1.0]]), np.array([0.0, 0.5])),
        (np.array([[2.0], [1.0]]), np.array([0.25])),
    ]
    model = build(
        engine,
        [(2, 2, "identity"), (2, 1, "sigmoid")],
        "binary_cross_entropy",
        weights,
    )
    loss, ((dw1, db1), (dw2, db2)) = model.loss_and_gradients([[1.0, 2.0]], [0.25])
    assert loss == pytest.approx(math.log1p(math.exp(0.75)) - 0.1875, abs=1e-12)
    assert_exact(dw2, [[d], [-1.5 * d]])
    assert_exact(db2, [d])
    assert_exact(dw1, [[2 * d, d], [4 * d, 2 * d]])
    assert_exact(db1, [2 * d, d])


@pytest.mark.parametrize("engine", ENGINES)
def test_hand_derived_mse_with_tanh_hidden_layer(engine):
    # 2-2-1: x = [1, -1], W1 = [[0.5, 1], [0.5, 0]], b1 = 0 -> z1 = [0, 1],
    #   h = tanh(z1) = [0, T] with T = tanh(1).
    # W2 = [[1], [2]], b2 = [0.5] -> o = 2 T + 0.5; y = 0.5 -> r = 2 T.
    # loss = r^2 = 4 T^2; dL/do = 2 r = 4 T.
    # dW2 = h^T (4T) = [[0], [4 T^2]], db2 = [4 T].
    # delta1 = 4T W2^T (.) (1 - h^2) = [4T * 1, 8T * (1 - T^2)].
    # dW1 = x^T delta1 = [delta1, -delta1], db1 = delta1.
    T = math.tanh(1.0)
    weights = [
        (np.array([[0.5, 1.0], [0.5, 0.0]]), np.zeros(2)),
        (np.array([[1.0], [2.0]]), np.array([0.5])),
    ]
    model = build(engine, [(2, 2, "tanh"), (2, 1, "identity")], "mse", weights)
    loss, ((dw1, db1), (dw2, db2)) = model.loss_and_gradients([[1.0, -1.0]], [0.5])
    assert loss == pytest.approx(4 * T * T, abs=1e-12)
    delta1 = [4 * T, 8 * T * (1 - T * T)]
    assert_exact(dw2, [[0.0], [4 * T * T]])
    assert_exact(db2, [4 * T])
    assert_exact(dw1, [delta1, [-v for v in delta1]])
    assert_exact(db1, delta1)


@pytest.mark.parametrize("engine", ENGINES)
def test_hand_derived_relu_derivative_at_exactly_zero_is_zero(engine):
    # 2-2-1: x = [1, 2], W1 = [[1, -2], [0.5, 1]], b1 = 0
    #   -> z1 = [1 + 1, -2 + 2] = [2, 0] exactly; h = relu(z1) = [2, 0].
    # W2 = [[1], [3]], b2 = 0 -> o = 2; y = 0: loss = 4, dL/do = 4.
    # dW2 = h^T 4 = [[8], [0]], db2 = [4].
    # delta1 = 4 W2^T (.) relu'(z1) = [4, 12] (.) [1, 0] = [4, 0]:
    #   relu'(0) = 0, so the second unit gets no gradient at all.
    # dW1 = x^T delta1 = [[4, 0], [8, 0]], db1 = [4, 0].
    weights = [
        (np.array([[1.0, -2.0], [0.5, 1.0]]), np.zeros(2)),
        (np.array([[1.0], [3.0]]), np.zeros(1)),
    ]
    model = build(engine, [(2, 2, "relu"), (2, 1, "identity")], "mse", weights)
    loss, ((dw1, db1), (dw2, db2)) = model.loss_and_gradients([[1.0, 2.0]], [0.0])
    assert loss == 4.0
    assert_exact(dw2, [[8.0], [0.0]])
    assert_exact(db2, [4.0])
    assert_exact(dw1, [[4.0, 0.0], [8.0, 0.0]])
    assert_exact(db1, [4.0, 0.0])
    assert dw1[0, 1] == 0.0 and dw1[1, 1] == 0.0 and db1[1] == 0.0


# 3. The Rust core against the numpy reference, step for step -------------------


def _problem(kind: str):
    rng = np.random.default_rng({"mse": 1, "ce": 2, "bce": 3, "huber": 4}[kind])
    X = rng.normal(size=(23, 4))
    if kind == "mse":
        specs = [(4, 6, "tanh"), (6, 2, "identity")]
        y = rng.normal(size=(23, 2))
    elif kind == "huber":
        specs = [(4, 5, "elu"), (5, 2, "softplus")]
        y = rng.normal(1.0, 1.5, size=(23, 2))
    elif kind == "ce":
        specs = [(4, 6, "relu"), (6, 3, "softmax")]
        y = rng.integers(0, 3, size=23)
    else:
        specs = [(4, 5, "gelu"), (5, 2, "sigmoid")]
        y = (rng.random((23, 2)) < 0.5).astype(float)
    loss = {
        "mse": "mse",
        "huber": "huber",
        "ce": "cross_entropy",
        "bce": "binary_cross_entropy",
    }[kind]
    return specs, loss, X, y


OPTIMIZERS = {
    "plain": lambda: bp.SGD(0.05),
    "momentum": lambda: bp.SGD(0.05, momentum=0.9),
    "nesterov": lambda: bp.SGD(0.05, momentum=0.9, nesterov=True),
    "weight_decay": lambda: bp.SGD(0.05, momentum=0.5, weight_decay=0.01),
    "step": lambda: bp.SGD(0.1, momentum=0.9, schedule=bp.StepDecay(2, 0.5)),
    "exponential": lambda: bp.SGD(
        0.1, momentum=0.5, nesterov=True, schedule=bp.ExponentialDecay(0.7)
    ),
    "cosine": lambda: bp.SGD(
        0.1, momentum=0.9, weight_decay=1e-3, schedule=bp.CosineAnnealing(3, 0.01)
    ),
}


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffle", "ordered"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("kind", ["mse", "huber", "ce", "bce"])
def test_rust_core_matches_numpy_reference_epoch_by_epoch(kind, opt_name, shuffle):
    specs, loss, X, y = _problem(kind)
    rust = build(bp.Sequential, specs, loss, seed=11)
    ref = build(reference.Sequential, specs, loss, seed=11)
    for (a, b), (c, d) in zip(rust.get_weights(), ref.get_weights()):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    opt_r, opt_n = OPTIMIZERS[opt_name](), OPTIMIZERS[opt_name]()
    for _ in range(4):
        # 23 samples in batches of 5: four steps of 5 and a last step of 3.
        h_r = rust.fit(X, y, epochs=1, batch_size=5, optimizer=opt_r, shuffle=shuffle)
        h_n = ref.fit(X, y, epochs=1, batch_size=5, optimizer=opt_n, shuffle=shuffle)
        for key in h_n.history:
            np.testing.assert_allclose(
                h_r.history[key], h_n.history[key], rtol=1e-10, atol=1e-12
            )
        for (a, b), (c, d) in zip(rust.get_weights(), ref.get_weights()):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(b, d, rtol=1e-10, atol=1e-12)
    # The weights did move: the comparison is not of two untouched models.
    fresh = build(bp.Sequential, specs, loss, seed=11).get_weights()
    assert not np.allclose(fresh[0][0], rust.get_weights()[0][0])


@pytest.mark.parametrize("kind", ["mse", "ce", "bce"])
def test_rust_core_matches_reference_history_over_a_multi_epoch_fit(kind):
    specs, loss, X, y = _problem(kind)
    rust = build(bp.Sequential, specs, loss, seed=5)
    ref = build(reference.Sequential, specs, loss, seed=5)
    kwargs = {"epochs": 4, "batch_size": 7, "shuffle": True}
    h_r = rust.fit(X, y, optimizer=OPTIMIZERS["cosine"](), **kwargs)
    h_n = ref.fit(X, y, optimizer=OPTIMIZERS["cosine"](), **kwargs)
    assert set(h_r.history) == set(h_n.history)
    for key in h_n.history:
        np.testing.assert_allclose(h_r.history[key], h_n.history[key], rtol=1e-10)
    for (a, b), (c, d) in zip(rust.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, d, rtol=1e-10, atol=1e-12)


# 4. SGD semantics against a hand-written torch.optim.SGD update ------------------


def torch_sgd_step(params, grads, state, lr, momentum, nesterov, wd):
    """``torch.optim.SGD.step`` with ``dampening=0``, on a flat list of arrays."""
    new = []
    for i, (p, g) in enumerate(zip(params, grads)):
        d_p = g + wd * p
        if momentum != 0:
            if i not in state:
                state[i] = d_p.copy()
            else:
                state[i] = momentum * state[i] + d_p
            d_p = d_p + momentum * state[i] if nesterov else state[i]
        new.append(p - lr * d_p)
    return new


def _flat(weights):
    return [p for pair in weights for p in pair]


def _pairs(flat):
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


SGD_SETTINGS = [
    (0.0, False, 0.0),
    (0.9, False, 0.0),
    (0.9, True, 0.0),
    (0.0, False, 0.1),
    (0.9, False, 0.05),
    (0.8, True, 0.05),
]


@pytest.mark.parametrize(("momentum", "nesterov", "wd"), SGD_SETTINGS)
def test_full_batch_fit_equals_manual_torch_sgd_updates(momentum, nesterov, wd):
    specs, loss, X, y = _problem("mse")
    model = build(bp.Sequential, specs, loss, seed=3)
    oracle = build(bp.Sequential, specs, loss, seed=3)
    # Nonzero biases, so that decay on biases is visible.
    start = [(w, np.full_like(b, 0.3)) for w, b in model.get_weights()]
    model.set_weights(start)
    params = _flat(start)
    opt = bp.SGD(0.05, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    state: dict[int, np.ndarray] = {}
    for _ in range(5):
        # One step per epoch: batch_size = n.
        model.fit(X, y, epochs=1, batch_size=23, optimizer=opt, shuffle=False)
        oracle.set_weights(_pairs(params))
        _, grads = oracle.loss_and_gradients(X, y)
        params = torch_sgd_step(
            params, _flat(grads), state, 0.05, momentum, nesterov, wd
        )
        for got, want in zip(_flat(model.get_weights()), params):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("nesterov", [False, True])
def test_first_momentum_step_uses_v_equal_to_g(nesterov):
    # Step 1 of torch's SGD: v = g, so w1 = w0 - lr g (plain momentum) or
    # w0 - lr (g + mu g) (Nesterov); not lr (1 - mu) g and not a zero velocity.
    specs, loss, X, y = _problem("mse")
    model = build(bp.Sequential, specs, loss, seed=4)
    w0 = model.get_weights()
    _, grads = model.loss_and_gradients(X, y)
    mu, lr = 0.9, 0.05
    opt = bp.SGD(lr, momentum=mu, nesterov=nesterov)
    model.fit(X, y, epochs=1, batch_size=100, optimizer=opt, shuffle=False)
    factor = 1 + mu if nesterov else 1.0
    for (w, b), (gw, gb), (w1, b1) in zip(w0, grads, model.get_weights()):
        np.testing.assert_allclose(w1, w - lr * factor * gw, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(b1, b - lr * factor * gb, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_weight_decay_applies_to_biases_with_zero_loss_gradient(engine):
    # With targets equal to the predictions every loss gradient is exactly 0, so
    # one step is p <- p - lr * wd * p for every parameter, biases included.
    specs, loss, X, _ = _problem("mse")
    model = build(engine, specs, loss, seed=6)
    start = [(w, np.linspace(-1, 1, b.size)) for w, b in model.get_weights()]
    model.set_weights(start)
    y = model.predict(X)
    _, grads = model.loss_and_gradients(X, y)
    assert all(not g.any() for g in _flat(grads))
    opt = bp.SGD(0.1, weight_decay=0.5)
    model.fit(X, y, epochs=1, batch_size=23, optimizer=opt, shuffle=False)
    for got, p in zip(_flat(model.get_weights()), _flat(start)):
        np.testing.assert_allclose(got, p * (1 - 0.1 * 0.5), rtol=1e-15, atol=0)


# 5. The last, smaller mini-batch ----------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_last_smaller_batch_is_averaged_over_its_own_size(engine):
    # 5 samples in batches of 2: rows [0:2], [2:4], [4:5]; the last step's
    # gradient is that of the mean loss over its single row.
    specs = [(2, 3, "tanh"), (3, 1, "identity")]
    rng = np.random.default_rng(8)
    X = rng.normal(size=(5, 2))
    y = rng.normal(size=(5, 1))
    model = build(engine, specs, "mse", seed=2)
    oracle = build(engine, specs, "mse", seed=2)
    params = _flat(model.get_weights())
    state: dict[int, np.ndarray] = {}
    expected_history = []
    for _ in range(2):
        weighted = 0.0
        for start, stop in [(0, 2), (2, 4), (4, 5)]:
            oracle.set_weights(_pairs(params))
            step_loss, grads = oracle.loss_and_gradients(X[start:stop], y[start:stop])
            weighted += step_loss * (stop - start)
            params = torch_sgd_step(params, _flat(grads), state, 0.1, 0.9, False, 0)
        expected_history.append(weighted / 5)
    history = model.fit(
        X, y, epochs=2, batch_size=2, optimizer=bp.SGD(0.1, momentum=0.9), shuffle=False
    )
    for got, want in zip(_flat(model.get_weights()), params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # history["loss"] is the batch-size-weighted mean of the step losses.
    np.testing.assert_allclose(history.history["loss"], expected_history, rtol=1e-12)


def test_batch_size_larger_than_data_is_one_full_batch():
    specs, loss, X, y = _problem("ce")
    a = build(bp.Sequential, specs, loss, seed=9)
    b = build(bp.Sequential, specs, loss, seed=9)
    ha = a.fit(X, y, epochs=3, batch_size=1000, optimizer=bp.SGD(0.1), shuffle=False)
    hb = b.fit(X, y, epochs=3, batch_size=23, optimizer=bp.SGD(0.1), shuffle=False)
    assert ha.history["loss"] == hb.history["loss"]
    for p, q in zip(_flat(a.get_weights()), _flat(b.get_weights())):
        assert np.array_equal(p, q)


# 6. Precision ------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_float32_model_keeps_float32_even_for_float64_input(engine):
    specs, loss, X, y = _problem("ce")
    model = build(engine, specs, loss, dtype="float32", seed=1)
    assert X.dtype == np.float64
    assert all(
        w.dtype == np.float32 and b.dtype == np.float32 for w, b in model.get_weights()
    )
    assert model.predict(X).dtype == np.float32
    loss_value, grads = model.loss_and_gradients(X, y)
    assert isinstance(loss_value, float)
    assert all(dw.dtype == np.float32 and db.dtype == np.float32 for dw, db in grads)
    model.fit(X, y, epochs=1, batch_size=5, optimizer=bp.SGD(0.1))
    assert all(
        w.dtype == np.float32 and b.dtype == np.float32 for w, b in model.get_weights()
    )
    # float64 weights given to set_weights are stored as float32.
    model.set_weights(
        [(w.astype(np.float64), b.astype(np.float64)) for w, b in model.get_weights()]
    )
    assert all(w.dtype == np.float32 for w, _ in model.get_weights())


@pytest.mark.parametrize("engine", ENGINES)
def test_float64_model_gives_float64_even_for_float32_input(engine):
    specs, loss, X, y = _problem("mse")
    model = build(engine, specs, loss, dtype="float64", seed=1)
    X32 = X.astype(np.float32)
    assert all(w.dtype == np.float64 for w, _ in model.get_weights())
    assert model.predict(X32).dtype == np.float64
    _, grads = model.loss_and_gradients(X32, y.astype(np.float32))
    assert all(dw.dtype == np.float64 and db.dtype == np.float64 for dw, db in grads)


@pytest.mark.parametrize("kind", ["mse", "ce", "bce"])
def test_float32_results_are_close_to_float64_results(kind):
    specs, loss, X, y = _problem(kind)
    m64 = build(bp.Sequential, specs, loss, dtype="float64", seed=2)
    m32 = build(bp.Sequential, specs, loss, dtype="float32", seed=2)
    # Same seed: the same draws, rounded to float32.
    for p, q in zip(_flat(m64.get_weights()), _flat(m32.get_weights())):
        np.testing.assert_allclose(q, p, rtol=1e-6, atol=1e-7)
    m32.set_weights(m64.get_weights())
    np.testing.assert_allclose(m32.predict(X), m64.predict(X), rtol=1e-4, atol=1e-5)
    l64, g64 = m64.loss_and_gradients(X, y)
    l32, g32 = m32.loss_and_gradients(X, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for p, q in zip(_flat(g32), _flat(g64)):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-5)
    h64 = m64.fit(X, y, epochs=3, batch_size=5, optimizer=bp.SGD(0.05, momentum=0.9))
    h32 = m32.fit(X, y, epochs=3, batch_size=5, optimizer=bp.SGD(0.05, momentum=0.9))
    np.testing.assert_allclose(h32.history["loss"], h64.history["loss"], rtol=1e-4)
    for p, q in zip(_flat(m32.get_weights()), _flat(m64.get_weights())):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4)


# 7. Numerics -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("engine", ENGINES)
def test_ce_with_huge_logits_is_finite_without_warnings(engine, dtype):
    # One softmax layer with W = 1e4 * [[1, -1, 0], [0, 0, 0]], b = 0:
    # x = [1, 0] gives z = [1e4, -1e4, 0], x = [-1, 0] gives [-1e4, 1e4, 0].
    # Labels 2 and 1: loss = ((1e4 - 0) + (1e4 - 1e4)) / 2 = 5e3, since
    # lse(z) = 1e4 + log(1 + e^-1e4 + e^-2e4) = 1e4 in floating point.
    # dL/dz = (softmax(z) - onehot) / 2 = ([1, 0, -1] and [0, 0, 0]) / 2.
    w = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])
    model = build(
        engine, [(2, 3, "softmax")], "cross_entropy", [(w, np.zeros(3))], dtype
    )
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    y = np.array([2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            loss, ((dw, db),) = model.loss_and_gradients(X, y)
            p = model.predict(X)
            ev = model.evaluate(X, y)["loss"]
            model.fit(X, y, epochs=2, batch_size=2, optimizer=bp.SGD(1e-6))
            after = model.get_weights()
    assert math.isfinite(loss) and math.isfinite(ev)
    assert loss == pytest.approx(5e3, rel=1e-6)
    assert np.isfinite(dw).all() and np.isfinite(db).all() and np.isfinite(p).all()
    np.testing.assert_allclose(db, [0.5, 0.0, -0.5], atol=1e-6)
    np.testing.assert_allclose(dw, [[0.5, 0.0, -0.5], [0.0, 0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(p, [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    assert all(np.isfinite(q).all() for q in _flat(after))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("engine", ENGINES)
def test_bce_with_saturated_logits_is_finite_without_warnings(engine, dtype):
    # One sigmoid unit z = 1000 x: x = 1, -1, 1 gives z = 1e3, -1e3, 1e3.
    # Targets 0, 1, 1: per-sample losses 1000, 1000, 0 (log-sigmoid form),
    # mean 2000 / 3; dL/dz = (sigmoid(z) - y) / 3 = [1, -1, 0] / 3.
    model = build(
        engine,
        [(1, 1, "sigmoid")],
        "binary_cross_entropy",
        [(np.array([[1000.0]]), np.zeros(1))],
        dtype,
    )
    X = np.array([[1.0], [-1.0], [1.0]])
    y = np.array([0.0, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            loss, ((dw, db),) = model.loss_and_gradients(X, y)
            p = model.predict(X)
            model.fit(X, y, epochs=1, batch_size=3, optimizer=bp.SGD(1e-6))
    assert loss == pytest.approx(2000 / 3, rel=1e-6)
    assert np.isfinite(p).all()
    # dW = x^T dL/dz = (1 * 1 + (-1) * (-1) + 1 * 0) / 3 = 2 / 3; db = 0.
    np.testing.assert_allclose(dw, [[2 / 3]], rtol=1e-6)
    np.testing.assert_allclose(db, [0.0], atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_predictions_sum_to_one(dtype):
    specs, loss, X, _ = _problem("ce")
    model = build(bp.Sequential, specs, loss, dtype=dtype, seed=0)
    p = model.predict(X * 30)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=tol)


# 8. Learning-rate schedules and continued training ---------------------------------


SCHEDULES = {
    "step": (
        lambda: bp.StepDecay(2, 0.5),
        lambda lr, e: lr * 0.5 ** (e // 2),
    ),
    "exponential": (
        lambda: bp.ExponentialDecay(0.8),
        lambda lr, e: lr * 0.8**e,
    ),
    "cosine": (
        lambda: bp.CosineAnnealing(4, 0.01),
        lambda lr, e: 0.01 + (lr - 0.01) * (1 + math.cos(math.pi * e / 4)) / 2,
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_lr_history_equals_closed_form(name):
    make, closed = SCHEDULES[name]
    specs, loss, X, y = _problem("mse")
    model = build(bp.Sequential, specs, loss, seed=0)
    opt = bp.SGD(0.2, schedule=make())
    history = model.fit(X, y, epochs=6, batch_size=8, optimizer=opt)
    expected = [closed(0.2, e) for e in range(6)]
    np.testing.assert_allclose(history.history["lr"], expected, rtol=1e-14, atol=0)
    assert history.epoch == list(range(6))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_lr_is_the_rate_applied_in_each_step(name):
    make, closed = SCHEDULES[name]
    specs, loss, X, y = _problem("mse")
    model = build(bp.Sequential, specs, loss, seed=1)
    oracle = build(bp.Sequential, specs, loss, seed=1)
    params = _flat(model.get_weights())
    state: dict[int, np.ndarray] = {}
    opt = bp.SGD(0.1, momentum=0.9, schedule=make())
    model.fit(X, y, epochs=6, batch_size=23, optimizer=opt, shuffle=False)
    for e in range(6):
        oracle.set_weights(_pairs(params))
        _, grads = oracle.loss_and_gradients(X, y)
        params = torch_sgd_step(
            params, _flat(grads), state, closed(0.1, e), 0.9, False, 0.0
        )
    for got, want in zip(_flat(model.get_weights()), params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffle"])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_second_fit_continues_schedule_and_momentum_bitwise(name, engine, shuffle):
    make, _ = SCHEDULES[name]
    specs, loss, X, y = _problem("ce")
    split = build(engine, specs, loss, seed=21)
    whole = build(engine, specs, loss, seed=21)
    opt_split = bp.SGD(0.1, momentum=0.9, nesterov=True, schedule=make())
    opt_whole = bp.SGD(0.1, momentum=0.9, nesterov=True, schedule=make())
    kwargs = {"batch_size": 5, "shuffle": shuffle}
    h1 = split.fit(X, y, epochs=2, optimizer=opt_split, **kwargs)
    h2 = split.fit(X, y, epochs=2, optimizer=opt_split, **kwargs)
    h = whole.fit(X, y, epochs=4, optimizer=opt_whole, **kwargs)
    for p, q in zip(_flat(split.get_weights()), _flat(whole.get_weights())):
        assert np.array_equal(p, q)
    for key in h.history:
        assert h1.history[key] + h2.history[key] == h.history[key]
    assert h1.epoch + h2.epoch == h.epoch == [0, 1, 2, 3]
