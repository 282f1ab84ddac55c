"""sb3_tar.kernels: the C++ sparse linear kernel and SparseLinear (real torch, real compiler, no mocks).

The kernel is built once per session (tens of seconds the first time, then cached). If it cannot be
built, these tests fail rather than skip: a C++ compiler is part of the test environment.

Tolerances: float32 results are compared element-wise with ``rtol=1e-5`` and ``atol=1e-5 * max|reference|``
(the kernel sums in another order than MKL and fuses multiply-adds, so an entry that cancels to near zero
carries the rounding error of its large terms; the errors seen are below 1e-6 * max|reference|).
float64 gradients are checked with ``gradcheck``'s defaults.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sb3_tar.kernels import (
    SparseLinear,
    build_structure,
    dense_to_values,
    kernel_available,
    kernel_error,
    load_kernel,
    sparse_linear_function,
    values_to_dense,
)

RTOL, ATOL = 1e-5, 1e-5
# batch sizes through every code path: matrix-vector (1), padded small batches, whole tiles, tiles + tail
BATCHES = (1, 2, 3, 17, 64, 100, 256)


@pytest.fixture(scope="module", autouse=True)
def kernel(single_thread):
    """Build (or load the cached) kernel once; an unavailable kernel is an error here, not a skip."""
    return load_kernel()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> None:
    """float32 comparison: ``rtol`` element-wise plus ``atol`` relative to the largest reference entry."""
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * scale)


def random_mask(out_features: int, in_features: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(out_features, in_features, generator=g) < density


def masked_linear(in_features: int, out_features: int, mask: torch.Tensor, seed: int, bias: bool = True) -> nn.Linear:
    """A dense nn.Linear with pruned weights at zero and a float ``weight_mask`` buffer (the masked path)."""
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        linear.weight.mul_(mask)
    linear.register_buffer("weight_mask", mask.float())
    return linear


def edge_mask(out_features: int, in_features: int, density: float, seed: int) -> torch.Tensor:
    """A random mask with an empty first row and an empty last column."""
    mask = random_mask(out_features, in_features, density, seed)
    mask[0, :] = False
    mask[:, -1] = False
    return mask


# --------------------------------------------------------------------------------------------------
# the kernel and its autograd


def test_kernel_is_available() -> None:
    assert kernel_available()
    assert kernel_error() is None


@pytest.mark.parametrize(
    "mask",
    [
        edge_mask(6, 9, 0.3, 0),
        edge_mask(7, 5, 0.6, 1),
        torch.ones(4, 6, dtype=torch.bool),  # fully dense
        torch.zeros(5, 4, dtype=torch.bool),  # nnz = 0
        random_mask(3, 40, 0.6, 2),  # long rows: the kernel's blocked paths (8+ kept weights per row)
    ],
    ids=["sparse", "denser", "dense", "empty", "long-rows"],
)
@pytest.mark.parametrize("batch", [1, 3, 20, 70])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_float64(mask: torch.Tensor, batch: int, bias: bool) -> None:
    structure = build_structure(mask)
    g = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, mask.shape[1], dtype=torch.float64, generator=g, requires_grad=True)
    values = torch.randn(structure.nnz, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(mask.shape[0], dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    inputs = (x, values, b) if bias else (x, values)

    def fn(*args: torch.Tensor) -> torch.Tensor:
        return sparse_linear_function(args[0], args[1], args[2] if bias else None, structure)

    assert torch.autograd.gradcheck(fn, inputs)


def test_gradcheck_float64_three_dimensional_input() -> None:
    mask = edge_mask(5, 8, 0.4, 3)
    structure = build_structure(mask)
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    values = torch.randn(structure.nnz, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: sparse_linear_function(*a, structure), (x, values, b))


@pytest.mark.parametrize(
    "shape, density",
    [((300, 256), 0.1), ((256, 393), 0.05), ((37, 53), 0.5), ((64, 64), 1.0), ((17, 256), 0.1)],
)
@pytest.mark.parametrize("batch", BATCHES)
def test_matches_masked_dense_linear_float32(shape: tuple[int, int], density: float, batch: int) -> None:
    out_features, in_features = shape
    mask = random_mask(out_features, in_features, density, seed=batch)
    dense = masked_linear(in_features, out_features, mask, seed=batch)
    sparse = SparseLinear.from_linear(dense, mask)
    x = torch.randn(batch, in_features)
    x_dense, x_sparse = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_y = torch.randn(batch, out_features)

    y_dense, y_sparse = dense(x_dense), sparse(x_sparse)
    assert_close(y_sparse, y_dense)
    y_dense.backward(grad_y)
    y_sparse.backward(grad_y)
    assert_close(x_sparse.grad, x_dense.grad)
    assert_close(sparse.values.grad, dense.weight.grad[mask])
    assert_close(sparse.bias.grad, dense.bias.grad)


@pytest.mark.parametrize("batch", [1, 7, 64, 100])
def test_matches_masked_dense_linear_float64(batch: int) -> None:
    """float64 (the kernel's double instantiation) agrees with dense float64 to rounding."""
    mask = random_mask(70, 90, 0.3, batch)
    dense = masked_linear(90, 70, mask, batch).double()
    sparse = SparseLinear.from_linear(dense, mask)
    x_dense = torch.randn(batch, 90, dtype=torch.float64, requires_grad=True)
    x_sparse = x_dense.detach().clone().requires_grad_()
    grad_y = torch.randn(batch, 70, dtype=torch.float64)
    dense(x_dense).backward(grad_y)
    sparse(x_sparse).backward(grad_y)
    assert_close(sparse(x_sparse), dense(x_dense), rtol=1e-12, atol=1e-12)
    assert_close(x_sparse.grad, x_dense.grad, rtol=1e-12, atol=1e-12)
    assert_close(sparse.values.grad, dense.weight.grad[mask], rtol=1e-12, atol=1e-12)
    assert_close(sparse.bias.grad, dense.bias.grad, rtol=1e-12, atol=1e-12)


def test_output_is_feature_major_and_chains_without_copies() -> None:
    """Outputs are (batch, out) tensors laid out as (out, batch): ReLU keeps that, the next layer reads it as is."""
    m1, m2 = random_mask(128, 64, 0.2, 0), random_mask(32, 128, 0.2, 1)
    l1, l2 = masked_linear(64, 128, m1, 0), masked_linear(128, 32, m2, 1)
    s1, s2 = SparseLinear.from_linear(l1, m1), SparseLinear.from_linear(l2, m2)
    x = torch.randn(256, 64, requires_grad=True)
    h = torch.relu(s1(x))
    assert h.shape == (256, 128) and h.t().is_contiguous()
    h.sum().backward()
    assert x.grad.is_contiguous()  # the gradient wrt an input has the input's layout
    assert_close(s2(h), l2(torch.relu(l1(x))))


def test_inputs_that_need_no_gradient() -> None:
    """Only the gradients asked for are computed: values only, input only, bias only."""
    mask = random_mask(20, 30, 0.3, 0)
    dense = masked_linear(30, 20, mask, 0)
    sparse = SparseLinear.from_linear(dense, mask)
    x = torch.randn(40, 30)
    sparse(x).sum().backward()  # x needs no grad
    dense(x).sum().backward()
    assert_close(sparse.values.grad, dense.weight.grad[mask])
    sparse.values.requires_grad_(False)
    sparse.bias.requires_grad_(False)
    xg = x.clone().requires_grad_()
    sparse(xg).sum().backward()
    assert_close(xg.grad, torch.ones(40, 20) @ dense.weight)


# --------------------------------------------------------------------------------------------------
# small batches, acting


@pytest.mark.parametrize("batch", [1, 2, 5, 16, 31])
def test_small_batches_without_grad_match_the_autograd_path(batch: int) -> None:
    mask = random_mask(96, 80, 0.08, batch)
    dense = masked_linear(80, 96, mask, batch)
    sparse = SparseLinear.from_linear(dense, mask)
    x = torch.randn(batch, 80)
    with torch.no_grad():
        y_direct = sparse(x)  # kernel called directly, no autograd.Function
    y_autograd = sparse(x)
    assert y_autograd.requires_grad and not y_direct.requires_grad
    assert_close(y_direct, y_autograd, rtol=0, atol=0)
    assert_close(y_direct, dense(x))
    with torch.no_grad():
        assert_close(sparse(x[0]), dense(x[0]))  # a single 1-D sample
        assert_close(sparse(x[None]), dense(x[None]))  # 3-D input


def test_empty_batch() -> None:
    mask = random_mask(8, 6, 0.5, 0)
    sparse = SparseLinear.from_linear(masked_linear(6, 8, mask, 0), mask)
    x = torch.randn(0, 6, requires_grad=True)
    y = sparse(x)
    assert y.shape == (0, 8)
    y.sum().backward()
    assert x.grad.shape == (0, 6) and torch.equal(sparse.values.grad, torch.zeros(sparse.nnz))


# --------------------------------------------------------------------------------------------------
# training


def test_adam_steps_match_masked_dense_training() -> None:
    mask = random_mask(64, 48, 0.1, 0)
    dense = masked_linear(48, 64, mask, 0)
    sparse = SparseLinear.from_linear(dense, mask)
    opt_dense = torch.optim.Adam(dense.parameters(), lr=1e-2)
    opt_sparse = torch.optim.Adam(sparse.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, target = torch.randn(256, 48, generator=g), torch.randn(256, 64, generator=g)
        for layer, opt in ((dense, opt_dense), (sparse, opt_sparse)):
            opt.zero_grad()
            F.mse_loss(torch.tanh(layer(x)), target).backward()
            if layer is dense:
                dense.weight.grad.mul_(mask)  # the masked path's gradient masking
            opt.step()
    assert_close(sparse.values, dense.weight[mask], rtol=RTOL, atol=1e-6)
    assert_close(sparse.bias, dense.bias, rtol=RTOL, atol=1e-6)
    assert torch.equal(dense.weight[~mask], torch.zeros(int((~mask).sum())))
    state = opt_sparse.state[sparse.values]
    assert state["exp_avg"].shape == (sparse.nnz,) == state["exp_avg_sq"].shape
    assert sum(p.numel() for p in sparse.parameters()) == int(mask.sum()) + 64


def test_optimizer_state_layout_conversion() -> None:
    mask = random_mask(10, 12, 0.3, 0)
    state = torch.randn(int(mask.sum()))
    dense = values_to_dense(state, mask)
    assert dense.shape == (10, 12) and torch.equal(dense[~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(dense_to_values(dense, mask), state)
    assert torch.equal(dense_to_values(dense, mask.float()), state)  # 0/1 float masks too
    with pytest.raises(ValueError, match="values has shape"):
        values_to_dense(state[:-1], mask)
    with pytest.raises(ValueError, match="dense has shape"):
        dense_to_values(dense.t(), mask)


# --------------------------------------------------------------------------------------------------
# state dicts: exactly those of a masked nn.Linear


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_keys_and_shapes_match_a_masked_linear(bias: bool) -> None:
    mask = random_mask(20, 30, 0.2, 0)
    dense = masked_linear(30, 20, mask, 0, bias=bias)
    sparse = SparseLinear.from_linear(dense, mask)
    sd_dense, sd_sparse = dense.state_dict(), sparse.state_dict()
    assert list(sd_sparse) == list(sd_dense)
    for key in sd_dense:
        assert sd_sparse[key].shape == sd_dense[key].shape and sd_sparse[key].dtype == sd_dense[key].dtype
        assert torch.equal(sd_sparse[key], sd_dense[key])


def test_sparse_state_dict_loads_into_a_masked_linear() -> None:
    mask = random_mask(20, 30, 0.2, 0)
    sparse = SparseLinear.from_linear(masked_linear(30, 20, mask, 0), mask)
    other = random_mask(20, 30, 0.5, 1)
    dense = masked_linear(30, 20, other, 5)
    dense.load_state_dict(sparse.state_dict())
    assert torch.equal(dense.weight_mask, mask.float())
    x = torch.randn(7, 30)
    assert_close(dense(x), sparse(x))


def test_masked_linear_state_dict_loads_into_sparse_with_another_mask() -> None:
    built_with = random_mask(20, 30, 0.1, 0)
    sparse = SparseLinear.from_linear(masked_linear(30, 20, built_with, 0), built_with)
    values_param, bias_param = sparse.values, sparse.bias
    new_mask = random_mask(20, 30, 0.3, 1)
    assert int(new_mask.sum()) != int(built_with.sum())
    dense = masked_linear(30, 20, new_mask, 7)
    sparse.load_state_dict(dense.state_dict())
    assert sparse.values is values_param and sparse.bias is bias_param  # optimizers keep their references
    assert sparse.nnz == int(new_mask.sum())
    assert torch.equal(sparse.mask, new_mask)
    assert torch.equal(sparse.values, dense.weight[new_mask])
    x = torch.randn(9, 30, requires_grad=True)
    assert_close(sparse(x), dense(x))
    sparse(x).sum().backward()
    assert sparse.values.grad.shape == (sparse.nnz,)


def test_state_dict_round_trip_through_torch_save() -> None:
    mask = random_mask(16, 24, 0.2, 0)
    a = SparseLinear.from_linear(masked_linear(24, 16, mask, 0), mask)
    b = SparseLinear.from_linear(masked_linear(24, 16, random_mask(16, 24, 0.6, 1), 1), random_mask(16, 24, 0.6, 1))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer))
    for key, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], value)


def test_load_state_dict_reports_bad_entries() -> None:
    mask = random_mask(8, 6, 0.5, 0)
    sparse = SparseLinear.from_linear(masked_linear(6, 8, mask, 0), mask)
    good = sparse.state_dict()
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        sparse.load_state_dict({**good, "weight": torch.zeros(6, 8)})
    with pytest.raises(RuntimeError, match="weight_mask must hold only 0 and 1"):
        sparse.load_state_dict({**good, "weight_mask": torch.full((8, 6), 0.5)})
    with pytest.raises(RuntimeError, match="Missing key"):
        sparse.load_state_dict({k: v for k, v in good.items() if k != "weight_mask"})
    with pytest.raises(RuntimeError, match="Unexpected key"):
        sparse.load_state_dict({**good, "values": torch.zeros(3)})
    result = sparse.load_state_dict({k: v for k, v in good.items() if k != "bias"}, strict=False)
    assert result.missing_keys == ["bias"]


def test_nested_state_dict_prefixes() -> None:
    mask = random_mask(8, 6, 0.5, 0)
    net_sparse = nn.Sequential(SparseLinear.from_linear(masked_linear(6, 8, mask, 0), mask), nn.ReLU())
    net_dense = nn.Sequential(masked_linear(6, 8, random_mask(8, 6, 0.2, 1), 1), nn.ReLU())
    assert list(net_sparse.state_dict()) == ["0.weight", "0.bias", "0.weight_mask"] == list(net_dense.state_dict())
    net_sparse.load_state_dict(net_dense.state_dict())
    x = torch.randn(3, 6)
    assert_close(net_sparse(x), net_dense(x))


# --------------------------------------------------------------------------------------------------
# the module


def test_from_linear_to_linear_and_weight_views() -> None:
    mask = random_mask(12, 10, 0.3, 0)
    dense = masked_linear(10, 12, mask, 0)
    sparse = SparseLinear.from_linear(dense, mask)
    assert (sparse.in_features, sparse.out_features) == (10, 12)
    assert torch.equal(sparse.weight, dense.weight) and not sparse.weight.requires_grad
    assert sparse.dense_weight().requires_grad  # differentiable wrt values
    back = sparse.to_linear()
    assert isinstance(back, nn.Linear) and torch.equal(back.weight, dense.weight) and torch.equal(back.bias, dense.bias)
    assert torch.equal(back.weight_mask, mask.float())
    assert "nnz=" in repr(sparse)


def test_set_mask_keeps_the_parameter_and_zero_starts_new_weights() -> None:
    mask = random_mask(12, 10, 0.3, 0)
    dense = masked_linear(10, 12, mask, 0)
    sparse = SparseLinear.from_linear(dense, mask)
    values = sparse.values
    sparse(torch.randn(3, 10)).sum().backward()
    grown = mask | random_mask(12, 10, 0.2, 1)
    sparse.set_mask(grown)
    assert sparse.values is values and sparse.nnz == int(grown.sum()) and sparse.values.grad is None
    assert torch.equal(sparse.weight, dense.weight)  # newly kept weights start at zero
    x = torch.randn(5, 10)
    assert_close(sparse(x), dense(x))


def test_conversions_deepcopy_and_other_dtypes() -> None:
    mask = random_mask(16, 12, 0.3, 0)
    dense = masked_linear(12, 16, mask, 0)
    sparse = SparseLinear.from_linear(dense, mask)
    x = torch.randn(20, 12)
    twin = copy.deepcopy(sparse)
    assert_close(twin(x), sparse(x), rtol=0, atol=0)
    sparse_64 = copy.deepcopy(sparse).double()  # float64 runs on the kernel too
    assert sparse_64.weight_mask.dtype == torch.float64
    assert_close(sparse_64(x.double()), copy.deepcopy(dense).double()(x.double()), rtol=1e-12, atol=1e-12)
    sparse_bf16 = copy.deepcopy(sparse).bfloat16()  # no kernel for bfloat16: dense F.linear fallback
    assert_close(sparse_bf16(x.bfloat16()).float(), dense(x), rtol=0.05, atol=0.05)


def test_bad_arguments() -> None:
    mask = random_mask(8, 6, 0.5, 0)
    linear = masked_linear(6, 8, mask, 0)
    sparse = SparseLinear.from_linear(linear, mask)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 6\)"):
        sparse(torch.randn(3, 7))
    with pytest.raises(TypeError, match="dtype"):
        sparse(torch.randn(3, 6, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"), torch.no_grad():
        sparse(torch.randn(3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask has shape"):
        SparseLinear.from_linear(linear, mask.t())
    with pytest.raises(ValueError, match="only 0 and 1"):
        SparseLinear.from_linear(linear, torch.full((8, 6), 0.5))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        SparseLinear.from_linear(linear, mask.tolist())
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        SparseLinear.from_linear(sparse, mask)
    with pytest.raises(ValueError, match="in_features"):
        SparseLinear(-1, 8, mask)


def test_kernels_package_does_not_import_stable_baselines3() -> None:
    code = "import sys, sb3_tar.kernels; assert 'stable_baselines3' not in sys.modules, 'imported SB3'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_without_a_compiler_the_kernel_is_unavailable_and_layers_fall_back(tmp_path: Path) -> None:
    """A build that cannot compile (CXX points nowhere, fresh cache): a clear error, and F.linear still works."""
    code = """
import warnings, torch
from sb3_tar.kernels import KernelUnavailableError, SparseLinear, kernel_available, kernel_error, load_kernel
assert not kernel_available()
assert "could not build" in kernel_error() and "/nonexistent/c++" in kernel_error(), kernel_error()
try:
    load_kernel()
except KernelUnavailableError as exc:
    assert str(exc) == kernel_error()
else:
    raise AssertionError("load_kernel did not raise")
mask = torch.rand(4, 5) < 0.5
layer = SparseLinear(5, 4, mask)
x = torch.randn(3, 5)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    y = layer(x)
assert any("falls back to dense" in str(w.message) for w in caught)
torch.testing.assert_close(y, torch.nn.functional.linear(x, layer.weight, layer.bias))
"""
    env = {**os.environ, "CXX": "/nonexistent/c++", "SB3_TAR_KERNEL_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1], env=env)


BUILDING = "sb3-tar: building the sparse C++ kernel"


def _kernel_process(code: str, pythonpath: Path, **env_changes: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter importing sb3_tar from ``pythonpath`` (the default kernel cache)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SB3_TAR_KERNEL_DIR", "PYTHONPATH")}
    env.update(PYTHONPATH=str(pythonpath), OMP_NUM_THREADS="1", **env_changes)
    result = subprocess.run([sys.executable, "-c", code], cwd=pythonpath, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_each_install_has_its_own_build_folder_and_a_build_says_so(tmp_path: Path) -> None:
    """Two installs (here two copies of the package) of the same source get two build folders in the default cache,
    so switching between them (an editable checkout and a wheel) loads each one's build instead of rebuilding in
    turn; a build prints one line while it runs, loading a cached build prints nothing (issue 32)."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    where = "from sb3_tar.kernels import _build; print(_build._build_directory(_build._extension_name(_build.NATIVE_FLAGS)))"
    cache = tmp_path / "cache"
    folders = []
    for install in ("a", "b"):
        shutil.copytree(root / "sb3_tar", tmp_path / install / "sb3_tar", ignore=shutil.ignore_patterns("__pycache__"))
        printed = _kernel_process(where, tmp_path / install, TORCH_EXTENSIONS_DIR=str(cache)).stdout.strip()
        folders.append(Path(printed))
    assert folders[0] != folders[1] and all(folder.parent == cache for folder in folders), folders
    assert folders[0].name.startswith("sb3_tar_sparse_linear_native_")
    # a fresh build (made to fail fast: no compiler) announces itself once, for the native and the portable try
    fails = "from sb3_tar.kernels import kernel_available; assert not kernel_available()"
    no_compiler = {"CXX": "/nonexistent/c++", "TORCH_EXTENSIONS_DIR": str(cache)}
    stderr = _kernel_process(fails, tmp_path / "a", **no_compiler).stderr
    assert stderr.count(BUILDING) == 1 and str(folders[0]) in stderr, stderr
    # the tests' own install, built already: loads silently
    load_kernel()
    assert BUILDING not in _kernel_process("from sb3_tar.kernels import load_kernel; load_kernel()", root).stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_layers_fall_back_to_dense_and_keep_state_dicts() -> None:
    """No kernel on CUDA: F.linear on the scattered weight, same results, same state dicts across devices."""
    mask = random_mask(64, 48, 0.1, 0)
    dense = masked_linear(48, 64, mask, 0).cuda()
    sparse = SparseLinear.from_linear(dense, mask.cuda())
    assert sparse.values.is_cuda and sparse.row_ptr.is_cuda
    x_dense = torch.randn(32, 48, device="cuda", requires_grad=True)
    x_sparse = x_dense.detach().clone().requires_grad_()
    dense(x_dense).sum().backward()
    sparse(x_sparse).sum().backward()
    assert_close(sparse(x_sparse), dense(x_dense), rtol=1e-4, atol=1e-4)
    assert_close(x_sparse.grad, x_dense.grad, rtol=1e-4, atol=1e-4)
    assert_close(sparse.values.grad, dense.weight.grad[mask.cuda()], rtol=1e-4, atol=1e-4)
    on_cpu = SparseLinear.from_linear(masked_linear(48, 64, random_mask(64, 48, 0.3, 1), 1), random_mask(64, 48, 0.3, 1))
    on_cpu.load_state_dict(sparse.state_dict())  # CUDA -> CPU, other mask
    assert torch.equal(on_cpu.weight, sparse.weight.cpu()) and torch.equal(on_cpu.mask, mask)
    moved = copy.deepcopy(on_cpu).cuda()  # CPU -> CUDA after construction
    assert_close(moved(x_dense.detach()), dense(x_dense.detach()), rtol=1e-4, atol=1e-4)
