"""The documentation builds, and its worked example matches the package.

- The Sphinx build (MyST guide + autodoc API reference) passes with warnings as errors.
- The worked example of docs/method.md is regenerated from the package and compared number by number.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    for page in ("index", "method", "masks", "dst", "usage", "experiments", "benchmarks", "design", "api/core"):
        assert (tmp_path / f"{page}.html").is_file(), page
    api = (tmp_path / "api" / "callbacks.html").read_text(encoding="utf-8")
    assert "TARCallback" in api and "DSTCallback" in api and "enforce_masks" in api


# ---------------------------------------------------------------- the worked example of docs/method.md


def _tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Markdown tables preceded by an HTML comment ``<!-- kind: name -->``, as lists of row dicts."""
    tables = {}
    for m in re.finditer(r"<!-- (\w+: [\w.]+) -->\n((?:\|.*\|\n)+)", text):
        lines = [line.strip().strip("|").split("|") for line in m.group(2).strip().splitlines()]
        header = [cell.strip() for cell in lines[0]]
        tables[m.group(1)] = [dict(zip(header, (cell.strip() for cell in row))) for row in lines[2:]]
    return tables


def _example_code(text: str) -> str:
    section = text[text.index("### SAC's actor on HalfCheetah") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_method_worked_example_matches_the_package() -> None:
    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    namespace: dict = {"print": lambda *args, **kwargs: None}
    exec(_example_code(text), namespace)  # the page's own code builds the model
    reports = namespace["model"].policy.sparsity_reports
    tables = _tables(text)
    for network in ("actor", "critic.qf0"):
        report = reports[network]
        (totals,) = tables[f"report: {network}"]
        n_total = report.total
        static = sum(layer.kept_before for layer in report.layers)
        assert totals["network"] == network
        assert int(totals["N"]) == n_total
        assert int(totals["K = round(0.1·N)"]) == round(0.1 * n_total) == report.kept
        assert int(totals["B = round(0.01·N)"]) == round(0.01 * n_total) == report.budget
        assert int(totals["static stage K − B"]) == static == report.kept - report.budget
        assert int(totals["kept after revival"]) == report.kept

        rows = tables[f"layers: {network}"]
        assert [r["layer"] for r in rows] == [layer.name for layer in report.layers]
        for row, layer in zip(rows, report.layers):
            n_out, n_in = layer.shape
            pruned = n_out * n_in - layer.kept_before
            need_left = min(max(0, layer.need - layer.floor), pruned - layer.floor)
            assert math.ceil((n_in + n_out) * math.log(n_in + n_out) / 2) >= layer.threshold
            expected = {
                "shape": f"{n_out}x{n_in}",
                "M_l": str(n_in + n_out),
                "E_l": str(layer.threshold),
                "K_l": str(layer.kept_before),
                "P_l": str(pruned),
                "g_l": str(layer.need),
                "f_l": str(layer.floor),
                "h_l": str(need_left),
                "B_l": str(layer.revived),
                "density": f"{layer.density:.4f}",
                "dead before": str(layer.dead_before),
                "dead after": str(layer.dead_after),
            }
            assert {key: row[key] for key in expected} == expected, layer.name


def test_method_stream_derivation_matches_the_package() -> None:
    """The stream code shown in docs/method.md gives the generators the package uses."""
    from sb3_tar.streams import stream_generator

    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "def stream_generator" in block)
    namespace: dict = {}
    exec(code, namespace)
    for args in [(0, "actor", "static"), (-3, "critic.qf1", "revival_positions"), (7, "critic.qf0", "dst_update", 250)]:
        assert namespace["stream_generator"](*args).initial_seed() == stream_generator(*args).initial_seed()
