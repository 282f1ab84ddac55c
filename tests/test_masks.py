"""The mask engine: sparsifiable layers, applying/enforcing masks, densities, dead units, FLOPs."""

from __future__ import annotations

import pytest
import torch
from conftest import TwoHeadActor, critic_net, mlp
from torch import nn

from sb3_tar.core.masks import (
    apply_masks,
    as_matrix,
    check_masks,
    dead_units,
    density,
    hidden_unit_states,
    kept_count,
    layer_densities,
    linear_layers,
    mask_gradients,
    masks_from_weights,
    matrix_shape,
    ones_masks,
    total_count,
    training_flops_ratio,
)


def random_masks(layers: list[nn.Linear], p: float, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(layer.weight.shape, generator=g) < p for layer in layers]


def test_linear_layers_lists_every_linear_in_module_order() -> None:
    actor = TwoHeadActor(obs_dim=5, act_dim=2, width=4)
    layers = linear_layers(actor)
    assert [n for n, _ in layers] == ["latent_pi.0", "latent_pi.2", "mu", "log_std"]
    assert [tuple(m.weight.shape) for _, m in layers] == [(4, 5), (4, 4), (2, 4), (2, 4)]


def test_linear_layers_exclude_drops_a_submodule() -> None:
    actor = TwoHeadActor(obs_dim=5, act_dim=2, width=4)
    assert [n for n, _ in linear_layers(actor, exclude=[actor.latent_pi])] == ["mu", "log_std"]


@pytest.mark.parametrize(
    "network", [nn.ConvTranspose2d(3, 4, 3), nn.Sequential(nn.LSTM(3, 4), nn.ReLU(), nn.Flatten()), nn.ReLU()]
)
def test_linear_layers_refuses_networks_without_linear(network: nn.Module) -> None:
    with pytest.raises(TypeError, match="no nn.Linear or convolution layer"):
        linear_layers(network)


def test_convolutions_are_sparsifiable_and_read_as_out_by_fan_in_matrices() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, (2, 5), groups=2), nn.Flatten(), nn.Linear(6, 2))
    assert [n for n, _ in linear_layers(net)] == ["0", "2", "4"]
    assert [matrix_shape(m) for _, m in linear_layers(net)] == [(4, 3 * 3 * 3), (6, 2 * 2 * 5), (2, 6)]
    mask = torch.ones(4, 3, 3, 3, dtype=torch.bool)
    mask[1] = False  # output channel 1 has no kept weight
    mask[:, 0, 0, 0] = False  # input (channel 0, offset (0, 0)) feeds no output
    assert dead_units(mask) == (1, 1)
    assert as_matrix(mask).shape == (4, 27)


def test_linear_layers_refuses_non_modules() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        linear_layers([nn.Linear(2, 2)])  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_apply_masks_zeroes_exactly_the_pruned_weights(seed: int, p: float) -> None:
    net = critic_net(width=32, seed=seed)
    layers = [m for _, m in linear_layers(net)]
    before = [layer.weight.detach().clone() for layer in layers]
    biases = [layer.bias.detach().clone() for layer in layers]
    masks = random_masks(layers, p, seed)
    apply_masks(layers, masks)
    for layer, w0, b0, m in zip(layers, before, biases, masks):
        assert torch.all(layer.weight[~m] == 0.0)
        assert torch.equal(layer.weight[m], w0[m])
        assert torch.equal(layer.bias, b0)  # biases stay dense
    recovered = masks_from_weights(layers)  # initial weights are never exactly 0.0
    assert all(torch.equal(a, b) for a, b in zip(recovered, masks))


def test_mask_gradients_keeps_pruned_weights_at_zero_through_sgd() -> None:
    net = mlp((6, 8, 3), seed=0)
    layers = [m for _, m in linear_layers(net)]
    masks = random_masks(layers, 0.3, 0)
    apply_masks(layers, masks)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(16, 6)).pow(2).sum().backward()
        mask_gradients(layers, masks)
        for layer, m in zip(layers, masks):
            assert torch.all(layer.weight.grad[~m] == 0.0)
        opt.step()
    for layer, m in zip(layers, masks):
        assert torch.all(layer.weight[~m] == 0.0)
        assert torch.all(layer.weight[m] != 0.0)


def test_check_masks_refuses_count_and_shape_mismatch() -> None:
    layers = [nn.Linear(3, 4), nn.Linear(4, 2)]
    with pytest.raises(ValueError, match="Got 1 masks for 2 layers"):
        check_masks(layers, [torch.ones(4, 3, dtype=torch.bool)])
    with pytest.raises(ValueError, match=r"Mask 1 has shape \(4, 2\)"):
        check_masks(layers, [torch.ones(4, 3, dtype=torch.bool), torch.ones(4, 2, dtype=torch.bool)])
    with pytest.raises(ValueError):
        apply_masks(layers, [torch.ones(3, 4, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)])


def test_counts_and_densities() -> None:
    masks = [torch.zeros(4, 5, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)]
    masks[0][0, :3] = True
    assert kept_count(masks) == 11
    assert total_count(masks) == 28
    assert density(masks) == pytest.approx(11 / 28)
    assert layer_densities(masks) == pytest.approx([3 / 20, 1.0])
    dense = ones_masks([nn.Linear(5, 4), nn.Linear(4, 2)])
    assert [m.dtype for m in dense] == [torch.bool, torch.bool]
    assert density(dense) == 1.0


def test_hidden_unit_states_tell_removed_units_from_half_connected_ones() -> None:
    # 4 hidden units computed from 3 inputs, read by two parallel heads of 2 outputs each
    producer = torch.zeros(4, 3, dtype=torch.bool)
    producer[0, 0] = producer[1, 2] = True  # units 0 and 1 have an input; 2 and 3 none
    head_a = torch.zeros(2, 4, dtype=torch.bool)
    head_b = torch.zeros(2, 4, dtype=torch.bool)
    head_a[0, 0] = True  # unit 0 feeds head a
    head_b[1, 2] = True  # unit 2 feeds head b only
    # unit 0 live; unit 1 input but no output, unit 2 output but no input: half-connected; unit 3 removed
    assert hidden_unit_states(producer, [head_a, head_b]) == (1, 2, 1)
    assert hidden_unit_states(producer, [head_a]) == (2, 1, 1)  # without head b, unit 2 is removed whole
    assert hidden_unit_states(torch.ones(4, 3), [torch.ones(2, 4)]) == (0, 0, 4)
    with pytest.raises(ValueError, match=r"\(2, 5\): expected \(n_out, 4\)"):
        hidden_unit_states(producer, [torch.ones(2, 5)])
    with pytest.raises(ValueError, match="at least one consumer"):
        hidden_unit_states(producer, [])


def test_dead_units_counts_outputs_without_inputs_and_inputs_without_outputs() -> None:
    # weight shape (n_out=4, n_in=5): rows are outputs, columns inputs
    mask = torch.zeros(4, 5, dtype=torch.bool)
    assert dead_units(mask) == (4, 5)
    mask[0, 0] = True
    assert dead_units(mask) == (3, 4)
    mask[1, 0] = True
    mask[2, 4] = True
    assert dead_units(mask) == (1, 3)  # output 3; inputs 1, 2, 3
    assert dead_units(torch.ones(4, 5)) == (0, 0)  # 0/1 float masks work too
    assert dead_units(torch.eye(3)) == (0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_dead_units_matches_a_loop_count(seed: int) -> None:
    mask = torch.rand(7, 9, generator=torch.Generator().manual_seed(seed)) < 0.15
    dead_out = sum(1 for r in range(7) if not any(bool(mask[r, c]) for c in range(9)))
    dead_in = sum(1 for c in range(9) if not any(bool(mask[r, c]) for r in range(7)))
    assert dead_units(mask) == (dead_out, dead_in)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 1.0])
def test_flops_ratio_equals_density_without_biases(p: float) -> None:
    layers = [nn.Linear(40, 30, bias=False), nn.Linear(30, 20, bias=False), nn.Linear(20, 1, bias=False)]
    masks = random_masks(layers, p, 3)
    masks[0][0, 0] = True  # never empty
    ratio = training_flops_ratio(masks, [False] * 3)
    assert 0.0 < ratio <= 1.0
    assert ratio == pytest.approx(density(masks))


def test_flops_ratio_counts_dense_biases() -> None:
    masks = [torch.zeros(3, 4, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)]
    masks[0][0, 0] = True
    # per layer 3 * (2 K + n_out): sparse 3*(2+3) + 3*(12+2), dense 3*(24+3) + 3*(12+2)
    assert training_flops_ratio(masks) == pytest.approx((5 + 14) / (27 + 14))
    assert training_flops_ratio(masks, [False, True]) == pytest.approx((2 + 14) / (24 + 14))
    assert training_flops_ratio([torch.ones(5, 5, dtype=torch.bool)]) == 1.0


def test_the_core_and_the_kernels_do_not_import_sb3() -> None:
    """The layers show in the folders: every module of sb3_tar.core and sb3_tar.kernels imports without SB3."""
    import pkgutil
    import subprocess
    import sys

    import sb3_tar.core
    import sb3_tar.kernels

    modules = [f"sb3_tar.core.{m.name}" for m in pkgutil.iter_modules(sb3_tar.core.__path__)]
    modules += [f"sb3_tar.kernels.{m.name}" for m in pkgutil.iter_modules(sb3_tar.kernels.__path__)]
    assert len(modules) >= 12
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "sys.exit(int('stable_baselines3' in sys.modules or 'gymnasium' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
