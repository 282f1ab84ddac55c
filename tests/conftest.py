"""Shared helpers for the pure-torch core tests: SB3-shaped networks and small exact references."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import pytest
import torch
from torch import nn

# Humanoid-v4: 376-dim observation, 17-dim action; SB3's default SAC/TD3 net_arch is [256, 256].
OBS_DIM = 376
ACT_DIM = 17
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.99)
CRITERIA = ("random", "erk", "magnitude", "synflow")


def mlp(sizes: Sequence[int], seed: int = 0, activation: type[nn.Module] = nn.ReLU, bias: bool = True) -> nn.Sequential:
    """A plain MLP ``sizes[0] -> ... -> sizes[-1]`` (activation between layers, none at the end)."""
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        modules.append(nn.Linear(n_in, n_out, bias=bias))
        if i < len(sizes) - 2:
            modules.append(activation())
    return nn.Sequential(*modules)


def critic_net(width: int = 256, seed: int = 0) -> nn.Sequential:
    """One SB3 Q-network at Humanoid sizes: (obs + act) -> width -> width -> 1."""
    return mlp((OBS_DIM + ACT_DIM, width, width, 1), seed=seed)


def actor_mlp(width: int = 256, seed: int = 0) -> nn.Sequential:
    """A deterministic (TD3-like) actor at Humanoid sizes as a plain MLP: obs -> width -> width -> act."""
    return mlp((OBS_DIM, width, width, ACT_DIM), seed=seed)


class TwoHeadActor(nn.Module):
    """
    SAC-like actor with SB3's layout: a shared trunk ``latent_pi`` and two heads ``mu`` and
    ``log_std`` (SB3 clamps log_std functionally, which is left out here).
    """

    def __init__(self, obs_dim: int = OBS_DIM, act_dim: int = ACT_DIM, width: int = 256, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.latent_pi = nn.Sequential(nn.Linear(obs_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.mu = nn.Linear(width, act_dim)
        self.log_std = nn.Linear(width, act_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mu(self.latent_pi(obs))


def two_head_forward(network: TwoHeadActor, x: torch.Tensor) -> torch.Tensor:
    """SynFlow forward of :class:`TwoHeadActor`: both heads' outputs, so R sums over both."""
    latent = network.latent_pi(x)
    return torch.cat([network.mu(latent), network.log_std(latent)], dim=-1)


def weight_count(network: nn.Module) -> int:
    return sum(m.weight.numel() for m in network.modules() if isinstance(m, nn.Linear))


def linears(network: nn.Module) -> list[nn.Linear]:
    return [m for m in network.modules() if isinstance(m, nn.Linear)]


def state_copy(network: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def assert_same_state(network: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = network.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), f"{k} changed"


def ref_erk_densities(shapes: Sequence[tuple[int, int]], n_keep: float) -> list[float]:
    """
    Independent ERK solver: find the one eps with sum_l min(1, eps * raw_l) * size_l = n_keep by
    bisection (raw_l = (n_in + n_out) / (n_in * n_out)); layers at min(...) = 1 are the dense-capped ones.
    """
    sizes = [o * i for o, i in shapes]
    raw = [(o + i) / (o * i) for o, i in shapes]

    def kept(eps: float) -> float:
        return sum(min(1.0, eps * r) * s for r, s in zip(raw, sizes))

    lo, hi = 0.0, 1.0
    while kept(hi) < n_keep:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if kept(mid) < n_keep else (lo, mid)
    eps = (lo + hi) / 2.0
    return [min(1.0, eps * r) for r in raw]


def ref_threshold(n_in: int, n_out: int) -> int:
    m = n_in + n_out
    return min(n_in * n_out, math.ceil(m * math.log(m) / 2))


def largest_remainder(targets: Sequence[float], total: int, caps: Sequence[int]) -> list[int]:
    """Reference largest-remainder rounding for targets that sum to ``total`` and respect ``caps`` (exact arithmetic)."""
    targets = [Fraction(t) for t in targets]
    counts = [min(math.floor(t), c) for t, c in zip(targets, caps)]
    order = sorted(range(len(targets)), key=lambda i: (-(targets[i] - math.floor(targets[i])), i))
    left = total - sum(counts)
    while left > 0:
        for i in order:
            if left and counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
    return counts


def ref_tar_allocation(
    shapes: Sequence[tuple[int, int]], kept: Sequence[int], budget: int, phi: float
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Reference of TAR steps 1-4 of docs/method.md, written from the page: ``(E, g, f, B)`` per layer."""
    n_layers = len(shapes)
    pruned = [o * i - k for (o, i), k in zip(shapes, kept)]
    e = [ref_threshold(i, o) for o, i in shapes]
    g = [max(0, el - k) for el, k in zip(e, kept)]
    f = [min(p, math.ceil(phi * budget / n_layers)) for p in pruned]
    if sum(f) > budget:  # documented edge: spread B evenly
        f = largest_remainder([Fraction(budget, n_layers)] * n_layers, budget, pruned)
    rest = budget - sum(f)
    h = [min(max(0, gl - fl), p - fl) for gl, fl, p in zip(g, f, pruned)]
    if rest <= sum(h):
        x = largest_remainder([Fraction(rest * hl, sum(h)) if rest else 0 for hl in h], rest, h)
    else:
        spare = [p - fl - hl for p, fl, hl in zip(pruned, f, h)]
        left = rest - sum(h)
        x = [hl + s for hl, s in zip(h, largest_remainder([Fraction(left * s, sum(spare)) for s in spare], left, spare))]
    return e, g, f, [fl + xl for fl, xl in zip(f, x)]


def subset(small: Sequence[torch.Tensor], large: Sequence[torch.Tensor]) -> bool:
    """Whether every mask of ``small`` is contained in the matching mask of ``large``."""
    return all(not bool((s.bool() & ~l.bool()).any()) for s, l in zip(small, large))


@pytest.fixture(scope="module")
def single_thread():
    """
    Run a module's tests on one intra-op thread: the core's tensors are small (matrix-vector
    products, one selection per round), and on a shared 2-core machine two spinning OpenMP threads
    make SynFlow up to ~10x slower. Restores the previous setting afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def humanoid_networks() -> dict[str, nn.Module]:
    """The networks of the issue, built once (tests must not modify them: they deep-copy first)."""
    return {
        "actor": actor_mlp(),
        "critic": critic_net(),
        "two_head_actor": TwoHeadActor(),
        "critic_1024": critic_net(1024),
        "actor_1024": actor_mlp(1024),
    }


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """
    Without pytest-xdist (``-p no:xdist``, or not installed), accept pyproject.toml's ``-n 2 --dist loadgroup`` and
    run the suite in this one process, as ``-n 0`` does.
    """
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist", "stand-ins for pytest-xdist's options, which is not loaded: tests run in one process")
    add = getattr(group, "_addoption", group.addoption)  # pytest reserves lowercase short options (-n) for plugins
    add("-n", "--numprocesses", dest="no_xdist_numprocesses", default=None, help="ignored without pytest-xdist")
    add("--dist", dest="no_xdist_dist", default="no", help="ignored without pytest-xdist")
    add("--no-loadscope-reorder", dest="no_xdist_reorder", action="store_true", help="ignored without pytest-xdist")


#: Selected tests besides the sweeps' readers from which on the sweeps run one cell at a time (beside those tests)
#: rather than two (when little else is selected, e.g. one file).
_OTHER_TESTS_FOR_ONE_JOB = 100

#: The ``xdist_group`` of the tests that read a session sweep: under ``--dist loadgroup`` (pyproject.toml's default)
#: they all go to one worker, which alone runs the sweeps, each once.
SWEEP_READERS_GROUP = "session_sweeps"


def _sweeps_read_by(item: pytest.Item) -> list[str]:
    """:return: The session sweeps (:data:`sweep_utils.SWEEPS`) that ``item`` reads."""
    from sweep_utils import SWEEPS

    return [name for name in SWEEPS if name in getattr(item, "fixturenames", ())]


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    """
    :return: Whether ``item`` uses a module- or class-scoped fixture of its own module (a model trained once for the
        module, a sweep of its own). pytest-xdist would build it again in each worker that runs one of the module's
        tests; the module's tests that use one are therefore one ``xdist_group``.
    """
    module = item.nodeid.split("::")[0]
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(
        fixturedef.scope in ("class", "module") and fixturedef.baseid.startswith(module)
        for fixturedefs in definitions.values()
        for fixturedef in fixturedefs
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which turns the group marks into node ids
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    In one process, the tests that read a session sweep run last (in their order), while the sweeps train in the
    background. Under pytest-xdist's ``--dist loadgroup`` they are one ``xdist_group`` (:data:`SWEEP_READERS_GROUP`),
    ordered first, so that (with ``--no-loadscope-reorder``) one worker gets them at once and runs the sweeps while
    the others run the rest; the tests of a module that use one of its module-scoped fixtures are a group too
    (:func:`_uses_a_module_fixture`), ordered next.
    """
    readers = [item for item in items if _sweeps_read_by(item)]
    if not _loadgroup(config):  # one process (-n 0, -p no:xdist)
        if readers:
            items[:] = [item for item in items if not _sweeps_read_by(item)] + readers
        return
    grouped = [item for item in items if not _sweeps_read_by(item) and _uses_a_module_fixture(item)]
    for item in readers:
        item.add_marker(pytest.mark.xdist_group(SWEEP_READERS_GROUP))
    for item in grouped:  # one worker builds the module's shared fixtures, not each worker
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    # --no-loadscope-reorder hands out the groups in this order: the sweeps' readers first (their worker starts the
    # sweeps at once), then the other groups (the larger units first), then single tests
    sizes = Counter(item.nodeid.split("::")[0] for item in grouped)
    grouped.sort(key=lambda item: -sizes[item.nodeid.split("::")[0]])  # stable: a module's tests keep their order
    rest = set(readers) | set(grouped)
    items[:] = readers + grouped + [item for item in items if item not in rest]


def _loadgroup(config: pytest.Config) -> bool:
    """:return: Whether pytest-xdist distributes the tests with ``--dist loadgroup`` (its workers see ``dist`` "no")."""
    return bool(getattr(config.option, "loadgroup", False)) or config.getoption("dist", None) == "loadgroup"


def _xdist_worker(config: pytest.Config) -> bool:
    """:return: Whether this process is a pytest-xdist worker (it then runs only the tests the controller sends)."""
    return hasattr(config, "workerinput")


@pytest.fixture(scope="session", autouse=True)
def session_sweeps(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """
    Start the sweeps that the selected tests read (:class:`sweep_utils.SessionSweeps`) before the first test, in the
    background; they are ended if the session stops before they finish.

    In a pytest-xdist worker, which collects every selected test but runs only those it is sent, nothing starts
    until a test reads a sweep: under ``--dist loadgroup`` all readers go to one worker (:data:`SWEEP_READERS_GROUP`)
    and its first reader starts all the sweeps the readers need, one after the other (each sweep runs once in the
    whole session, on that worker); under another ``--dist`` each worker runs the sweeps its own readers read.
    """
    from sweep_utils import SWEEPS, SessionSweeps

    items = request.session.items
    wanted = [name for name in SWEEPS if any(name in _sweeps_read_by(item) for item in items)]  # in SWEEPS' order
    others = sum(1 for item in items if not _sweeps_read_by(item))
    sweeps = SessionSweeps(tmp_path_factory.mktemp, jobs=1 if others >= _OTHER_TESTS_FOR_ONE_JOB else 2)
    if not _xdist_worker(request.config):
        for name in wanted:
            sweeps.start(name)
    elif _loadgroup(request.config):
        sweeps.start_on_first_result(wanted)
    yield sweeps
    sweeps.close()


@pytest.fixture(scope="session")
def smoke_sweep(session_sweeps):
    """
    The smoke preset swept and reported once for the whole session (:func:`sweep_utils.run_smoke`): its results
    directory, the sweep that finished it and the report. Its cells are checked by test_sweep.py and are the
    uninterrupted references of the killed cells in test_checkpoint.py (the cell that the sweep's kill interrupted had
    no checkpoint: it ran again from step 0). Tests read it and never write into it.
    """
    smoke = session_sweeps.result("smoke_sweep")
    return smoke["root"], smoke["sweep"], smoke["report"]


@pytest.fixture(scope="session")
def killed_sweep(smoke_sweep, session_sweeps) -> dict:
    """
    How the session's smoke sweep was killed while its second cell trained, then run twice more
    (:func:`sweep_utils.run_smoke`), read by test_sweep.py.
    """
    return session_sweeps.result("smoke_sweep")


@pytest.fixture(scope="session")
def baselines_sweep(session_sweeps):
    """
    The baselines' sweep and its report, once for the session (:func:`sweep_utils.run_baselines`), read by
    test_sweep_baselines.py: the results directory and the sweep's and the report's standard output.
    """
    return session_sweeps.result("baselines_sweep")
