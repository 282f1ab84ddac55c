"""Per-layer report of a pruning and revival (pure Python): a readable table and a plain dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerReport:
    """
    What pruning and revival did to one layer (the report fields of ``docs/method.md``).

    :param name: Qualified name of the ``nn.Linear`` layer.
    :param shape: ``(n_out, n_in)`` of its weight.
    :param threshold: Topology proxy ``E_l``.
    :param kept_before: Kept count ``K_l`` after static pruning, before revival.
    :param need: ``g_l = max(0, E_l - K_l)``.
    :param floor: Connectivity floor ``f_l`` (0 unless the revival is TAR).
    :param revived: Revived count ``B_l``.
    :param density: Final density of the layer.
    :param dead_before: Dead units (outputs with no incoming plus inputs with no outgoing
        connection) before revival.
    :param dead_after: Dead units after revival.
    """

    name: str
    shape: tuple[int, int]
    threshold: int
    kept_before: int
    need: int
    floor: int
    revived: int
    density: float
    dead_before: int
    dead_after: int

    @property
    def kept_after(self) -> int:
        """Kept count after revival."""
        return self.kept_before + self.revived


@dataclass(frozen=True)
class NetworkReport:
    """
    Report of one network's pruning and revival.

    :param network: Name of the network (for example ``"actor"`` or ``"critic.qf0"``).
    :param criterion: Static criterion used.
    :param revival: Revival method used.
    :param target_sparsity: Sparsity asked for.
    :param budget: Revival budget ``B``.
    :param flops_ratio: Estimated training FLOPs of the masked layers relative to dense.
    :param layers: One :class:`LayerReport` per sparsifiable layer.
    """

    network: str
    criterion: str
    revival: str
    target_sparsity: float
    budget: int
    flops_ratio: float
    layers: list[LayerReport] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Sparsifiable weights in the network."""
        return sum(layer.shape[0] * layer.shape[1] for layer in self.layers)

    @property
    def kept(self) -> int:
        """Kept weights after revival."""
        return sum(layer.kept_after for layer in self.layers)

    @property
    def density(self) -> float:
        """Final density of the network."""
        return self.kept / self.total

    @property
    def sparsity(self) -> float:
        """Final sparsity of the network."""
        return 1.0 - self.density

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkReport:
        """
        :param data: A dict written by :meth:`to_dict`.
        :return: The report (derived fields such as ``kept`` are recomputed, not read).
        """
        layer_fields = set(LayerReport.__dataclass_fields__)
        layers = [
            LayerReport(**{k: (tuple(v) if k == "shape" else v) for k, v in layer.items() if k in layer_fields})
            for layer in data["layers"]
        ]
        own = {k: data[k] for k in cls.__dataclass_fields__ if k != "layers"}
        return cls(layers=layers, **own)

    def to_dict(self) -> dict[str, Any]:
        """:return: The report as plain Python types (for loggers and JSON)."""
        out = asdict(self)
        out["layers"] = [dict(asdict(layer), shape=list(layer.shape)) for layer in self.layers]
        out.update(total=self.total, kept=self.kept, density=self.density, sparsity=self.sparsity)
        return out

    def __str__(self) -> str:
        header = ("layer", "shape", "E_l", "K_l", "g_l", "f_l", "B_l", "density", "dead before", "dead after")
        rows = [
            (
                layer.name,
                f"{layer.shape[0]}x{layer.shape[1]}",
                str(layer.threshold),
                str(layer.kept_before),
                str(layer.need),
                str(layer.floor),
                str(layer.revived),
                f"{layer.density:.4f}",
                str(layer.dead_before),
                str(layer.dead_after),
            )
            for layer in self.layers
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

        def fmt(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        title = (
            f"{self.network}: criterion={self.criterion} revival={self.revival} B={self.budget} "
            f"kept {self.kept}/{self.total} (sparsity {self.sparsity:.4f}, target {self.target_sparsity:.4f}), "
            f"training FLOPs {self.flops_ratio:.3f}x dense"
        )
        rule = "-" * len(fmt(header))
        return "\n".join([title, fmt(header), rule, *(fmt(r) for r in rows)])
