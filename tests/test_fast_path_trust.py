"""Trust in the sparse fast path (issue 16): no hung builds, files that load anywhere, optimizer state that
follows the mask, copies that stay sparse, no silent writes, the device decides the path, no dense weight
on the hot path, documented inf/NaN behaviour, a one-line fallback warning.

Real SAC on Pendulum-v1, real subprocesses and a real compiler (or a real lack of one); no mocks."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_utils import SMALL, small_kwargs
from stable_baselines3 import SAC
from torch import nn

from sb3_tar import TARCallback, sac
from sb3_tar.core.masks import is_compressed
from sb3_tar.kernels import SparseLinear, load_kernel
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.reporting.model_masks import sparsity_summary

ROOT = Path(__file__).resolve().parents[1]
#: A hang check, not a speed claim: a process that finishes at all finishes far within this.
HANG_LIMIT_S = 240


def run_python(code: str, env: dict[str, str], timeout: float = HANG_LIMIT_S) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this worktree; fail with its output if it fails."""
    env = {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    return result


def no_compiler_env(tmp_path: Path) -> dict[str, str]:
    """A PATH without a C++ compiler (CXX unset) and a fresh extensions folder: the build really fails."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CXX"}
    env.update(PATH=str(empty), SB3_TAR_KERNEL_DIR=str(tmp_path / "kernel"))
    return env


def sparse_modules(policy: nn.Module) -> list[SparseLinear]:
    return [m for m in policy.modules() if isinstance(m, SparseLinear)]


def pruned_nonzero(policy: nn.Module) -> int:
    return sum(stats["pruned_nonzero"] for stats in sparsity_summary(policy).values())


# ------------------------------------------------------------------------------------------------------
# 1. a killed build never hangs the next process


def test_a_killed_build_does_not_hang_the_next_process(tmp_path: Path) -> None:
    """Kill a real build (SIGKILL) as soon as torch's lock file exists; the next process goes past it."""
    kernel_dir = tmp_path / "kernel"
    env = {**os.environ, "SB3_TAR_KERNEL_DIR": str(kernel_dir), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    builder = subprocess.Popen(
        [sys.executable, "-c", "from sb3_tar.kernels import load_kernel; load_kernel()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill below ends its compiler too
    )
    lock = kernel_dir / "lock"
    deadline = time.monotonic() + HANG_LIMIT_S
    while not lock.exists() and builder.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), "the build never created torch's lock file"
    os.killpg(builder.pid, signal.SIGKILL)  # the builder and the compiler it started (ninja, c++), as a kill -9 of
    builder.wait()  # a terminal's job does; a compiler left running would only burn CPU
    assert lock.exists()  # the stale lock a killed build leaves behind
    # the next process: a build that fails fast (no compiler), so this costs seconds, not a full build
    code = """
    from sb3_tar.kernels import kernel_available, kernel_error
    assert not kernel_available()
    assert "c++" in kernel_error() and "build lock" not in kernel_error(), kernel_error()
    """
    run_python(code, no_compiler_env(tmp_path) | {"SB3_TAR_KERNEL_DIR": str(kernel_dir)})  # timeout: the hang check
    assert not lock.exists()


def test_waiting_for_a_live_build_is_bounded_and_names_the_lock(tmp_path: Path) -> None:
    """Another process holds the build lock: the wait ends after the bound with a one-line reason naming the lock
    (the reason the 'auto' fallback warning prints, see the test below). Deciding for another device than the
    CPU builds nothing (it would have to wait for that lock)."""
    fcntl = pytest.importorskip("fcntl")
    env = no_compiler_env(tmp_path) | {"SB3_TAR_KERNEL_LOCK_TIMEOUT": "1"}
    kernel_dir = Path(env["SB3_TAR_KERNEL_DIR"])
    kernel_dir.mkdir()
    lock_path = kernel_dir / "sb3_tar_build.lock"
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a live builder
        code = f"""
        import torch
        from sb3_tar.kernels import _build, kernel_available, kernel_summary
        from sb3_tar.sb3.execution import sparse_execution as sparse_exec

        # 6: another device decides the masked path without building anything (a build would wait here)
        assert sparse_exec.resolve("auto", torch.device("cuda")) is False
        assert _build._kernel is None and _build._error is None, "a build was tried"
        try:
            sparse_exec.resolve(True, "cuda")
        except RuntimeError as exc:
            assert "the model is on cuda" in str(exc), exc
        else:
            raise AssertionError("True on cuda did not raise")
        assert _build._error is None

        assert not kernel_available()
        summary = kernel_summary()
        assert "timed out" in summary and {str(lock_path)!r} in summary and "\\n" not in summary, summary
        """
        run_python(code, env)


#: A stand-in for the kernel's source (compiles in a second): a Python module named as torch names the extension.
_TINY_SOURCE = r"""
#include <Python.h>
#define SB3_CAT_(a, b) a##b
#define SB3_CAT(a, b) SB3_CAT_(a, b)
#define SB3_STR_(a) #a
#define SB3_STR(a) SB3_STR_(a)
static PyModuleDef tiny = {PyModuleDef_HEAD_INIT, SB3_STR(TORCH_EXTENSION_NAME), nullptr, -1, nullptr};
PyMODINIT_FUNC SB3_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&tiny); }
"""

#: A C++ compiler that logs each call and, compiling the source, waits until every builder process has called
#: ``load_kernel`` (their ``ready_*`` files), so the build really overlaps the other process's call.
_WAITING_CXX = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in *tiny.cpp*)
  for i in $(seq 1200); do [ "$(ls "{ready}" | wc -l)" -ge 2 ] && break; sleep 0.1; done
  sleep 1;;
esac
exec c++ "$@"
"""


def test_two_processes_building_at_once_both_load_one_build(tmp_path: Path) -> None:
    """Two processes (two pytest-xdist workers, two sweep cells) build the kernel into one empty folder at the same
    time: both load it, and it is compiled once (the second waits for the first's build lock, then finds it built).
    The kernel's source is replaced by a tiny module so the test costs seconds."""
    import shutil

    if shutil.which("c++") is None:
        pytest.skip("needs a C++ compiler")
    (tmp_path / "tiny.cpp").write_text(_TINY_SOURCE)
    ready, log, cxx = tmp_path / "ready", tmp_path / "cxx.log", tmp_path / "bin" / "c++"
    ready.mkdir()
    cxx.parent.mkdir()
    cxx.write_text(_WAITING_CXX.format(log=log, ready=ready))
    cxx.chmod(0o755)
    code = f"""
    import sys
    from pathlib import Path
    from sb3_tar.kernels import _build
    _build.SOURCE = Path({str(tmp_path / "tiny.cpp")!r})
    (Path({str(ready)!r}) / sys.argv[1]).touch()
    module = _build.load_kernel()
    print(module.__name__)
    """
    env = {**os.environ, "SB3_TAR_KERNEL_DIR": str(tmp_path / "kernel"), "CXX": str(cxx)}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", textwrap.dedent(code)]
    builders = [
        subprocess.Popen([*cmd, str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = [b.communicate(timeout=HANG_LIMIT_S) for b in builders]
    for builder, (out, err) in zip(builders, outs):
        assert builder.returncode == 0, f"stdout:\n{out}\nstderr:\n{err[-4000:]}"
    names = {out.strip() for out, _ in outs}
    assert len(names) == 1 and names.pop().startswith("sb3_tar_sparse_linear_native_"), outs
    compiles = [line for line in log.read_text().splitlines() if "tiny.cpp" in line]
    assert len(compiles) == 1, compiles


# ------------------------------------------------------------------------------------------------------
# 2, 6 and 9: files saved with True load where the kernel cannot be built; the device decides without
# compiling; the fallback warning is one line naming the build log


def test_files_saved_with_true_load_without_a_compiler(tmp_path: Path) -> None:
    load_kernel()
    obs = np.stack([np.array([np.cos(a), np.sin(a), 0.3 * a], dtype=np.float32) for a in np.linspace(-3, 3, 16)])
    expected = {}
    policy_model = SAC(
        sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9, sparse_execution=True), **small_kwargs("sac")
    )
    policy_model.learn(80)
    callback_model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    callback_model.learn(80, callback=TARCallback(sparsity=0.9, sparse_execution=True))
    for name, model in (("policy", policy_model), ("callback", callback_model)):
        assert sparse_modules(model.policy)
        model.save(tmp_path / f"{name}.zip")
        expected[name] = model.predict(obs, deterministic=True)[0]
    np.save(tmp_path / "obs.npy", obs)
    np.save(tmp_path / "policy.npy", expected["policy"])
    np.save(tmp_path / "callback.npy", expected["callback"])
    code = f"""
    import warnings
    import numpy as np, torch
    from stable_baselines3 import SAC
    from sb3_tar import sac
    from sb3_tar.kernels import SparseLinear, _build
    from sb3_tar.sb3.execution import sparse_execution as sparse_exec
    from sb3_tar.sb3.reporting.model_masks import sparsity_summary

    tmp = {str(tmp_path)!r}
    obs = np.load(tmp + "/obs.npy")
    for name in ("policy", "callback"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = SAC.load(tmp + "/" + name + ".zip", device="cpu")
        messages = [str(w.message) for w in caught if "sb3-tar" in str(w.message)]
        assert any("saved with sparse_execution=True" in m for m in messages), messages
        assert not [m for m in model.policy.modules() if isinstance(m, SparseLinear)], name
        np.testing.assert_allclose(model.predict(obs, deterministic=True)[0], np.load(tmp + "/" + name + ".npy"), atol=1e-6)
        model.set_env(__import__("gymnasium").make("Pendulum-v1"))
        model.learn(20, reset_num_timesteps=False)
        assert all(s["pruned_nonzero"] == 0 for s in sparsity_summary(model).values()), name
    assert _build._error is not None  # the build was really tried, and failed

    # 9: a fresh 'auto' model: one short warning line saying why and where the full build log is
    sparse_exec._warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[32, 32], sparsity=0.9), device="cpu")
    messages = [str(w.message) for w in caught if "sb3-tar" in str(w.message)]
    assert len(messages) == 1 and "\\n" not in messages[0] and len(messages[0]) < 400, messages
    log = _build.kernel_log()
    assert log is not None and "full build log: " + log in messages[0], messages[0]
    assert "c++" in open(log).read()
    # a new model asking for True still gets a clear error
    try:
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[32, 32], sparse_execution=True), device="cpu")
    except RuntimeError as exc:
        assert "sparse_execution=True, but the sparse kernel is not available here" in str(exc)
    else:
        raise AssertionError("True without a compiler did not raise")
    """
    run_python(code, no_compiler_env(tmp_path))


def test_the_device_decides_the_path_both_ways() -> None:
    """Deciding for another device puts a sparse policy back on the masked path; back on the CPU it runs sparse."""
    from sb3_tar.sb3.policies import follow_device

    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    model.learn(120)
    policy = model.policy
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(8)]))
    with torch.no_grad():
        before = policy.actor(obs, deterministic=True)
    weights = {k: v.clone() for k, v in policy.state_dict().items()}
    layer = sparse_modules(policy)[0]
    name = next(k for k, m in policy.named_modules() if m is layer)
    holder = policy.actor if name.startswith("actor") else policy.critic
    kept_avg = holder.optimizer.state[layer.values]["exp_avg"].clone()

    follow_device(policy, policy.mask_enforcer, device="cuda")  # what .to("cuda") decides, forced on the CPU
    assert not sparse_modules(policy) and policy.sparse_layers == []
    dense = policy.get_submodule(name)
    assert type(dense) is nn.Linear
    for k, v in policy.state_dict().items():
        torch.testing.assert_close(v, weights[k], rtol=0, atol=0, msg=k)
    moments = holder.optimizer.state[dense.weight]["exp_avg"]  # scattered into the dense layout at the kept positions
    assert torch.equal(moments[layer.mask], kept_avg) and int((moments[~layer.mask] != 0).sum()) == 0
    with torch.no_grad():
        torch.testing.assert_close(policy.actor(obs, deterministic=True), before, rtol=0, atol=1e-6)
    model.learn(60, reset_num_timesteps=False)
    assert pruned_nonzero(policy) == 0

    follow_device(policy, policy.mask_enforcer, device="cpu")
    assert sparse_modules(policy) and policy.sparse_layers
    model.learn(60, reset_num_timesteps=False)
    assert pruned_nonzero(policy) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_models_stay_on_the_masked_path(tmp_path: Path) -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac", device="cuda"))
    assert not sparse_modules(model.policy)
    model.learn(100)
    model.policy.to("cpu")
    assert sparse_modules(model.policy)
    model.policy.to("cuda")
    assert not sparse_modules(model.policy)
    model.learn(60, reset_num_timesteps=False)
    cpu_model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    cpu_model.learn(80)
    cpu_model.save(tmp_path / "m.zip")
    loaded = SAC.load(tmp_path / "m.zip", env=cpu_model.get_env(), device="cuda")
    assert not sparse_modules(loaded.policy)
    loaded.learn(60, reset_num_timesteps=False)
    assert pruned_nonzero(loaded.policy) == 0


# ------------------------------------------------------------------------------------------------------
# 3. load_state_dict with other masks: optimizer state follows the mask


def _critic_layer(policy: nn.Module) -> tuple[str, SparseLinear]:
    return next((k, m) for k, m in policy.named_modules() if isinstance(m, SparseLinear) and k.startswith("critic.qf0"))


@pytest.mark.parametrize("change", ["same-count", "fewer"])
def test_load_state_dict_with_other_masks_moves_the_optimizer_state(change: str) -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    model.learn(120)
    policy = model.policy
    name, layer = _critic_layer(policy)
    optimizer = policy.critic.optimizer
    optimizer.load_state_dict(optimizer.state_dict())  # as in a resumed run: state loaded, no step since
    old_mask = layer.mask.clone()
    dense_avg = torch.zeros(old_mask.shape)
    dense_avg[old_mask] = optimizer.state[layer.values]["exp_avg"]  # by hand: the moments where they belong
    if change == "same-count":
        new_mask = torch.roll(old_mask, 1, dims=1)
    else:
        new_mask = old_mask.clone()
        new_mask.view(-1)[old_mask.view(-1).nonzero()[:7, 0]] = False
    assert not torch.equal(new_mask, old_mask)
    state = policy.state_dict()
    for prefix in (name, name.replace("critic.", "critic_target.", 1)):
        state[prefix + ".weight"] = state[prefix + ".weight"].roll(1, dims=1) * new_mask
        state[prefix + ".weight_mask"] = new_mask.float()
    policy.load_state_dict(state)
    assert torch.equal(layer.mask, new_mask) and layer.nnz == int(new_mask.sum())
    saved = optimizer.state_dict()  # what would be written to a file
    moments = optimizer.state[layer.values]["exp_avg"]
    assert torch.equal(moments, dense_avg[new_mask])  # kept where kept before, zero where newly kept
    params = [p for group in optimizer.param_groups for p in group["params"]]
    index = next(i for i, p in enumerate(params) if p is layer.values)
    assert torch.equal(saved["state"][index]["exp_avg"], dense_avg * new_mask)
    model.learn(60, reset_num_timesteps=False)  # steps run on the new mask
    assert optimizer.state[layer.values]["exp_avg"].shape == (int(new_mask.sum()),)
    assert pruned_nonzero(policy) == 0


# ------------------------------------------------------------------------------------------------------
# 4. deepcopy and pickle give independent policies that stay sparse


def _one_step_each(policy: nn.Module, seed: int = 0) -> None:
    """One critic and one actor step on random data, through the policy's own optimizers."""
    g = torch.Generator().manual_seed(seed)
    obs, act = torch.randn(32, 3, generator=g), torch.rand(32, 1, generator=g) * 2 - 1
    for role, loss_fn in (
        ("critic", lambda: sum(q.pow(2).mean() for q in policy.critic(obs, act))),
        ("actor", lambda: policy.critic(obs, policy.actor(obs))[0].mean()),
    ):
        optimizer = getattr(policy, role).optimizer
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()


@pytest.mark.parametrize(
    "option, how", [(True, "policy"), (False, "policy"), (True, "callback")], ids=["sparse", "masked", "callback-sparse"]
)
def test_copies_are_independent_and_stay_sparse(option: bool, how: str) -> None:
    kwargs = small_kwargs("sac", learning_rate=0.05)  # large steps: an unmasked pruned weight moves visibly
    if how == "policy":
        policy_kwargs = dict(SMALL, sparsity=0.9, sparse_execution=option)
        model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)
        model.learn(80)
    else:  # the live policy of a model made sparse by a callback in this process
        model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **kwargs)
        model.learn(80, callback=TARCallback(sparsity=0.9, sparse_execution=option))
    original = {k: v.clone() for k, v in model.policy.state_dict().items()}
    for copied in (copy.deepcopy(model.policy), pickle.loads(pickle.dumps(model.policy))):
        assert bool(sparse_modules(copied)) == option
        _one_step_each(copied)
        assert attached_enforcer(copied) is not attached_enforcer(model.policy)
        assert pruned_nonzero(copied) == 0
        changed = [k for k, v in copied.state_dict().items() if k in original and not torch.equal(v, original[k])]
        assert any(k.startswith("critic.qf0") for k in changed)  # the copy trained
        for k, v in model.policy.state_dict().items():  # the original did not
            assert torch.equal(v, original[k]), k
        if option:  # the copy's optimizer keeps state for kept weights only and saves it densely
            layer = next(m for m in copied.critic.modules() if is_compressed(m))
            assert copied.critic.optimizer.state[layer.values]["exp_avg"].shape == (layer.nnz,)
            dense = copied.critic.optimizer.state_dict()["state"]
            assert any(v["exp_avg"].shape == layer.mask.shape for v in dense.values())
    _one_step_each(model.policy, seed=1)  # and the original still trains under its own hooks
    assert pruned_nonzero(model.policy) == 0


# ------------------------------------------------------------------------------------------------------
# 5. writes to a compressed layer's weight raise instead of vanishing


def test_writes_to_a_compressed_weight_raise_and_name_the_api() -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    layer = sparse_modules(model.policy)[0]
    before = layer.values.detach().clone()
    writes = {
        "nn.init": lambda: nn.init.kaiming_uniform_(layer.weight),
        "mul_": lambda: layer.weight.mul_(0.5),
        ".data": lambda: layer.weight.data.zero_(),
        "row reset": lambda: layer.weight.__setitem__(0, 0.0),
        "view": lambda: layer.weight[:, 0].normal_(),
        "orthogonal": lambda: nn.init.orthogonal_(layer.weight),
        "out=": lambda: torch.mul(layer.weight, 0.5, out=layer.weight),
    }
    for what, write in writes.items():
        with pytest.raises(RuntimeError, match=r"read-only dense copy.*layer\.values.*set_mask"):
            write()
        assert torch.equal(layer.values, before), what
    for value in (nn.Parameter(torch.zeros(layer.out_features, layer.in_features)), torch.zeros(3)):
        with pytest.raises(AttributeError, match=r"cannot assign SparseLinear\.weight.*layer\.values"):
            layer.weight = value
    # reads still work, and what they return is a plain tensor
    assert float((layer.weight != 0).sum()) <= layer.nnz and type(layer.weight * 2) is torch.Tensor
    with torch.no_grad():  # the documented ways in do take effect
        layer.values.mul_(0.5)
    torch.testing.assert_close(layer.weight[layer.mask], before * 0.5)


# ------------------------------------------------------------------------------------------------------
# 7. the post-step hook builds no dense weight


def test_the_post_step_hook_builds_no_dense_weight() -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    policy = model.policy
    assert sparse_modules(policy)
    obs, act = torch.randn(16, 3), torch.rand(16, 1)
    optimizer = policy.critic.optimizer
    optimizer.zero_grad()
    sum(q.pow(2).mean() for q in policy.critic(obs, act)).backward()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        optimizer.step()  # the step and its mask-enforcement hooks
    ops = {event.name for event in prof.events()}
    assert "aten::scatter" not in ops, sorted(ops)  # scatter_dense: what layer.weight builds
    assert pruned_nonzero(policy) == 0


# ------------------------------------------------------------------------------------------------------
# 8. inf/NaN in an input whose column is pruned: documented, and as documented


def test_non_finite_input_in_a_pruned_column_behaves_as_documented() -> None:
    torch.manual_seed(0)
    mask = torch.rand(6, 5) < 0.5
    mask[:, 2] = False  # input 2 feeds nothing
    mask[0, 0] = True
    dense = nn.Linear(5, 6)
    with torch.no_grad():
        dense.weight.mul_(mask)
    sparse = SparseLinear.from_linear(dense, mask)
    x = torch.randn(4, 5)
    for bad in (float("inf"), float("nan")):
        x_bad = x.clone()
        x_bad[1, 2] = bad
        x_zero = x.clone()
        x_zero[1, 2] = 0.0
        with torch.no_grad():
            kernel, masked = sparse(x_bad), dense(x_bad)
        assert torch.isnan(masked[1]).all()  # 0 * inf and 0 * nan are NaN on the masked path
        assert torch.isfinite(kernel).all()  # a pruned weight does not exist on the kernel
        torch.testing.assert_close(kernel, dense(x_zero).detach(), rtol=1e-5, atol=1e-6)
        rows = [0, 2, 3]  # other samples agree
        torch.testing.assert_close(kernel[rows], masked[rows].detach(), rtol=1e-5, atol=1e-6)
    page = (ROOT / "docs" / "sparse_execution.md").read_text()
    assert "0 · inf" in page and "NaN" in page and "pruned input" in page
