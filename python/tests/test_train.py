"""ebm.train is `ebm train`: bit-identical checkpoints at the same seed and flags; the run object;
objectives by name; Rust samplers on a Python energy (statistical checks at 4 standard errors)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import ebm
from conftest import ebm_command, read_safetensors

FLAGS = dict(objective="dsm", steps=40, hidden=[16, 16], batch=64, seed=3, lr=3e-3,
             checkpoint_every=20, log_every=10)


def cli_args(flags):
    return ebm._flag_args(flags)


def assert_same_checkpoint(a, b):
    ta, tb = read_safetensors(a), read_safetensors(b)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and ta[k].tobytes() == tb[k].tobytes(), k


@pytest.mark.parametrize("data", ["8gaussians", "array"])
def test_train_matches_the_command_line_bit_for_bit(tmp_path, data):
    flags = dict(FLAGS, no_report=True, quiet=True)
    if data == "array":
        rows = np.random.default_rng(5).normal(size=(500, 3)).astype(np.float32)
        py_run = ebm.train(data=rows, out=str(tmp_path / "py"), **flags)
        data = py_run.config["data"]["path"] if "path" in py_run.config["data"] else None
        assert data is not None, py_run.config["data"]
    else:
        py_run = ebm.train(data=data, out=str(tmp_path / "py"), **flags)
    subprocess.run([ebm_command(), "train", "--data", data, "--out", str(tmp_path / "cli")]
                   + cli_args(flags), check=True)
    assert py_run.finished
    assert_same_checkpoint(tmp_path / "py" / "checkpoint.safetensors",
                           tmp_path / "cli" / "checkpoint.safetensors")
    m = py_run.metrics
    assert m and m[-1]["step"] == 40 and np.isfinite(m[-1]["loss"])


def test_run_object_evaluates_and_samples(tmp_path):
    run = ebm.train(data="8gaussians", out=str(tmp_path / "r"), quiet=True, eval_samples=200,
                    **dict(FLAGS, steps=60))
    assert run.eval is not None and np.isfinite(run.eval["test_nll"])
    loaded = ebm.load(run.dir)
    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    e, s = loaded.energy(x), loaded.score(x)
    assert e.shape == (10,) and s.shape == (10, 2)
    # the score is minus the gradient of the energy (central differences in f32)
    h = 1e-2
    d = np.zeros_like(x)
    d[:, 0] = h
    fd = -(loaded.energy(x + d) - loaded.energy(x - d)) / (2 * h)
    np.testing.assert_allclose(s[:, 0], fd, rtol=0.05, atol=0.05)
    log_z = loaded.log_z()
    assert abs(log_z - run.eval["log_z"]) < 1e-6 * max(1.0, abs(log_z))
    assert abs(loaded.nll() - run.eval["test_nll"]) < 1e-4 * max(1.0, abs(run.eval["test_nll"]))
    x1, info = loaded.sample(50, sampler="mala", steps=20, seed=1)
    x2, _ = loaded.sample(50, sampler="mala", steps=20, seed=1)
    assert x1.shape == (50, 2) and np.array_equal(x1, x2) and info["sampler"] == "mala"
    subprocess.run([ebm_command(), "sample", str(run.dir), "--sampler", "mala", "--n", "50",
                    "--steps", "20", "--seed", "1", "--out", str(tmp_path / "s.npy")], check=True,
                   capture_output=True)
    assert np.array_equal(np.load(tmp_path / "s.npy"), x1)


def test_objective_by_name_trains_a_model_in_rust():
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(512, 2)) * 0.5).astype(np.float32)
    model = ebm.Model(2, hidden=[32], objective="ssm-vr", seed=0)
    opt = ebm.Optimizer(model, "adam", lr=1e-2)
    obj = ebm.Objective("ssm-vr", data, projections=2)
    r = ebm.Rng(0)
    losses = [obj.step(model, opt, data[i % 4 * 128:(i % 4 + 1) * 128], r) for i in range(150)]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    assert set(ebm.objective_options("ncsn")) >= {"sigma_min", "sigma_max", "levels"}
    assert len(ebm.objective_names()) == 21


def gaussian_energy(x):
    """E(x) = |x - m|^2 / (2 s^2) with m = (1, -2), s = 0.5."""
    m = np.array([1.0, -2.0])
    return ((x - m) ** 2).sum(axis=1) / (2 * 0.25)


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_rust_sampler_on_a_python_energy(sampler):
    x, info = ebm.sample(gaussian_energy, np.zeros((400, 2)), sampler=sampler, steps=200, seed=4)
    assert x.shape == (400, 2) and 0.3 < info["accept_rate"] <= 1.0
    se = 0.5 / np.sqrt(400)  # final states of independent chains
    assert np.all(np.abs(x.mean(axis=0) - [1.0, -2.0]) < 4 * se)
    var_se = 0.25 * np.sqrt(2 / 399)
    assert np.all(np.abs(x.var(axis=0, ddof=1) - 0.25) < 4 * var_se)


def test_sampler_on_a_model_and_a_shared_generator():
    model = ebm.Mlp([2, 8, 1], seed=0)
    r = ebm.Rng(7)
    a, _ = ebm.sample(model, np.zeros((16, 2), np.float32), sampler="ula", steps=5, rng=r)
    b, _ = ebm.sample(model, np.zeros((16, 2), np.float32), sampler="ula", steps=5, rng=r)
    assert not np.array_equal(a, b)  # the generator advanced
    c, _ = ebm.sample(model, np.zeros((16, 2), np.float32), sampler="ula", steps=5, rng=ebm.Rng(7))
    assert np.array_equal(a, c)


def mlp_energy(x, p):
    """The 2-16-16-1 SiLU MLP of ebm.Model.mlp, written in ebm.Var ops."""
    h = x.linear(p[0], p[1]).silu()
    h = h.linear(p[2], p[3]).silu()
    return h.linear(p[4], p[5]).reshape(x.shape[0])


@pytest.mark.parametrize("rows", [64, 600])  # 600 rows: the step splits them into row blocks
def test_objective_trains_a_python_energy_as_it_trains_the_same_model(rows):
    data = np.random.default_rng(1).normal(size=(rows, 2)).astype(np.float32)
    model = ebm.Model.mlp([2, 16, 16, 1], seed=2)
    params, start = model.params, model.params
    opt_m = ebm.Optimizer(model, "adam", lr=1e-2)
    opt_f = ebm.Optimizer(params, "adam", lr=1e-2)
    obj_m, obj_f = ebm.Objective("dsm", data, sigma=0.1), ebm.Objective("dsm", data, sigma=0.1)
    r_m, r_f = ebm.Rng(7), ebm.Rng(7)
    # the built-in MLP takes its closed-form parameter VJP (ebm-nn's silu_mlp), the energy
    # written in Var ops the tape's: the same derivatives, summed in another order, so they
    # agree to f32 rounding rather than bit for bit
    for _ in range(5):
        lm = obj_m.step(model, opt_m, data, r_m)
        lf = obj_f.step(mlp_energy, opt_f, data, r_f, params=params)
        assert lm == pytest.approx(lf, rel=1e-5)
    after = model.params
    for name in params.names():
        np.testing.assert_allclose(params[name], after[name], rtol=1e-5, atol=1e-6)
        # the steps moved every parameter the score depends on (all but the output bias) far
        # beyond that tolerance
        moved = np.abs(after[name] - start[name]).max()
        assert moved > 1e-3 or (name == "l2.bias" and moved == 0), name


def test_python_energy_errors_reach_python():
    data = np.zeros((300, 2), dtype=np.float32)
    params = ebm.Model.mlp([2, 4, 1], seed=0).params
    opt = ebm.Optimizer(params, "adam")
    obj = ebm.Objective("dsm", data, sigma=0.1)

    def raises(x, p):
        raise KeyError("inside the energy")

    with pytest.raises(KeyError, match="inside the energy"):
        obj.step(raises, opt, data, ebm.Rng(0), params=params)
    with pytest.raises(TypeError, match="must return a Var"):
        obj.step(lambda x, p: 1.0, opt, data, ebm.Rng(0), params=params)
    with pytest.raises(ValueError, match="one energy per row"):
        obj.step(lambda x, p: x.linear(p[0], p[1]).sum(), opt, data, ebm.Rng(0), params=params)
    with pytest.raises(TypeError, match="needs params"):
        obj.step(mlp_energy, opt, data, ebm.Rng(0))
    with pytest.raises(TypeError, match="ebm.Model or a Python energy"):
        obj.step(3, opt, data, ebm.Rng(0), params=params)
    before = ebm.Model.mlp([2, 4, 1], seed=0).params
    for name in params.names():  # a failed step changed nothing
        np.testing.assert_array_equal(params[name], before[name])
