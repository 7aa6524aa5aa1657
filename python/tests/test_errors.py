"""Bad inputs raise the right exception with a clear message; layouts and dtypes are handled
or refused; a Rust panic is a RuntimeError, never an abort."""
from __future__ import annotations

import numpy as np
import pytest

import ebm


def test_integer_and_object_arrays_are_refused_with_the_fix():
    tape = ebm.Tape()
    with pytest.raises(TypeError, match=r"float32 or float64 array, got dtype int64.*astype"):
        tape.var(np.arange(4, dtype=np.int64))
    with pytest.raises(TypeError, match="expected numbers"):
        tape.var(["a", "b"])


def test_lists_and_numbers_are_float64_and_dtype_is_honoured():
    tape = ebm.Tape()
    assert tape.var([[1, 2], [3, 4]]).dtype == "float64"
    assert tape.var(2.5).shape == ()
    assert tape.var(np.ones(3), dtype="float32").dtype == "float32"
    with pytest.raises(ValueError, match="dtype must be"):
        tape.var(np.ones(3), dtype="int8")


def test_non_contiguous_arrays_are_read_in_logical_order():
    a = np.arange(24.0).reshape(4, 6)
    views = [a.T, a[:, ::2], a[::-1], np.asfortranarray(a)]
    tape = ebm.Tape()
    for v in views:
        np.testing.assert_array_equal(tape.var(v).value, np.ascontiguousarray(v))


def test_outputs_are_fresh_contiguous_arrays():
    tape = ebm.Tape()
    x = tape.var(np.ones((3, 2), dtype=np.float32))
    out = x.value
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"] and out.flags["WRITEABLE"]
    out[0, 0] = 5.0
    assert x.value[0, 0] == 1.0  # the Var's value is not aliased


def test_shape_and_dtype_mismatches_name_both_shapes():
    tape = ebm.Tape()
    a, b = tape.var(np.ones((2, 3))), tape.var(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\[2, 3\].*\[4, 5\]|\[4, 5\].*\[2, 3\]"):
        a @ b
    with pytest.raises(ValueError):
        a + tape.var(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="out of range"):
        a.sum(axis=2)


def test_gradient_of_a_constant_and_of_a_non_scalar_are_value_errors():
    tape = ebm.Tape()
    x, c = tape.var(np.ones(3)), tape.constant(np.ones(3))
    with pytest.raises(ValueError, match="constant"):
        ebm.grad((x * c).sum(), c)
    with pytest.raises(ValueError):
        ebm.grad(x * 2.0, x)


def test_python_exception_inside_a_callback_comes_back_unchanged():
    def bad(x):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        ebm.gradcheck(bad, [np.ones(2)])
    with pytest.raises(KeyError, match="from the callback"):
        ebm.sample(bad, np.zeros((4, 2)), steps=3)
    with pytest.raises(TypeError, match="must return a Var"):
        ebm.sample(lambda x: 1.0, np.zeros((4, 2)), steps=3)


def test_a_rust_panic_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="boom"):
        ebm._ebm._panic_for_tests("boom")
    # and the interpreter is still alive and working
    assert ebm.Tape().var(1.0).item() == 1.0


def test_objective_errors_carry_the_command_line_messages():
    x = np.random.default_rng(0).normal(size=(64, 2))
    with pytest.raises(ValueError, match=r"unknown objective `dsn`: expected one of dsm, dsm-cv"):
        ebm.Objective("dsn", x)
    with pytest.raises(ValueError, match="unknown option `sigmaa`"):
        ebm.Objective("dsm", x, sigmaa=0.1)
    with pytest.raises(ValueError, match="sigma"):
        ebm.Objective("dsm", x, sigma=-1.0)
    with pytest.raises(ValueError, match="gsm"):
        ebm.Objective("gsm", x)  # signed data for a non-negative domain


def test_train_errors_are_the_commands(tmp_path):
    with pytest.raises(ValueError, match="--steps must be at least 1"):
        ebm.train(steps=0, out=tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="invalid value 'leaky' for '--activation"):
        ebm.train(activation="leaky", out=tmp_path / "b", quiet=True)
    with pytest.raises(ValueError, match="unexpected argument '--colour'"):
        ebm.train(colour="red", out=tmp_path / "c", quiet=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ebm.train(data=str(tmp_path / "missing.csv"), out=tmp_path / "d", quiet=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ebm.load(tmp_path / "no-such-run")
    with pytest.raises(TypeError, match="int64"):
        ebm.train(data=np.arange(10).reshape(5, 2), out=tmp_path / "e", quiet=True)
