"""The documentation builds, its links and paths resolve, and its worked example matches the package.

- The Sphinx build (MyST guide + autodoc API reference) passes with warnings as errors.
- Every relative link or repository path named in README.md, docs/, and the docstrings and comments
  of sb3_tar/, hyperparams/, benchmarks/ and examples/ points to an existing file (and heading), and
  nothing points outside the repository.
- The worked example of docs/method.md is regenerated from the package and compared number by number.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top-level entries of the repository that a path in prose or a docstring may start with.
REPO_DIRS = ("docs", "sb3_tar", "benchmarks", "examples", "hyperparams", "tests", ".ci")
REPO_FILES = ("README.md", "pyproject.toml")
# Outputs that commands write, named in the docs but not (yet) in the repository: the docs build, and
# sweep results committed under benchmarks/results/ as they are produced.
OUTPUT_PREFIXES = ("docs/_build", "benchmarks/results/")
# References to files outside the repository (written split so that this file does not match itself).
FORBIDDEN = ("../" + "shared", "TAR" + "_SPEC")

MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:" + "|".join(re.escape(d) for d in REPO_DIRS) + r")/[\w./-]*\w"
    r"|(?:" + "|".join(re.escape(f) for f in REPO_FILES) + r"))(?![\w/-])"
)
FENCE = re.compile(r"^\s*(```|~~~)")


def checked_files(root: Path = ROOT) -> list[Path]:
    """Files whose links and paths must resolve."""
    files = [root / "README.md"]
    files += sorted(p for p in (root / "docs").rglob("*.md") if "_build" not in p.parts)
    for folder, pattern in (("sb3_tar", "*.py"), ("hyperparams", "*.yml"), ("benchmarks", "*.py"), ("examples", "*.py")):
        files += sorted(p for p in (root / folder).rglob(pattern) if "results" not in p.relative_to(root).parts)
    return [p for p in files if p.is_file()]


def slug(heading: str) -> str:
    """GitHub's (and MyST's) anchor of a Markdown heading."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Anchors of the headings of a Markdown file (code blocks skipped)."""
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            found.add(slug(m.group(1)))
    return found


def _check_target(source: Path, target: str, root: Path) -> str | None:
    """:return: Why ``target`` (a link in ``source``) is broken, or ``None``."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
        return None
    path_part, _, fragment = target.partition("#")
    resolved = (source.parent / path_part).resolve() if path_part else source
    try:
        relative = resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return f"{target} points outside the repository"
    if relative.startswith(OUTPUT_PREFIXES):
        return None
    if not resolved.exists():
        return f"{target} does not exist"
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"{target}: no heading with the anchor #{fragment} in {relative}"
    return None


def broken_references(files: list[Path], root: Path = ROOT) -> list[str]:
    """
    :param files: Files to scan.
    :param root: Repository root.
    :return: One message per broken Markdown link, repository path or forbidden reference.
    """
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(root).as_posix()
        for bad in FORBIDDEN:
            if bad in text:
                problems.append(f"{where}: mentions {bad!r}, which is not part of the repository")
        if path.suffix == ".md":
            for target in MD_LINK.findall(text):
                why = _check_target(path, target, root)
                if why:
                    problems.append(f"{where}: link {why}")
        for match in REPO_PATH.finditer(text):
            name = match.group(1).rstrip(".")
            if name.startswith(OUTPUT_PREFIXES):
                continue
            if not (root / name).exists():
                problems.append(f"{where}: path {name} does not exist")
    return problems


def test_links_and_paths_resolve() -> None:
    files = checked_files()
    assert any(p.name == "method.md" for p in files) and any(p.suffix == ".yml" for p in files)
    problems = broken_references(files)
    assert not problems, "\n".join(problems)


def test_nothing_points_outside_the_repository() -> None:
    suffixes = {".md", ".py", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".rst", ".ini"}
    skip = {".git", "_build", "__pycache__", ".pytest_cache", ".ruff_cache", "results", "logs", "runs"}
    files = [
        p
        for p in ROOT.rglob("*")
        if p.is_file()
        and not skip.intersection(p.relative_to(ROOT).parts)
        and (p.suffix in suffixes or p.name in ("run", ".gitignore"))
        and not p.name.endswith(".egg-info")
    ]
    hits = [
        f"{p.relative_to(ROOT).as_posix()}: {bad!r}"
        for p in files
        for bad in FORBIDDEN
        if bad in p.read_text(encoding="utf-8", errors="replace")
    ]
    assert not hits, "\n".join(hits)


def test_link_checker_catches_planted_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "sb3_tar").mkdir()
    (tmp_path / "docs" / "good.md").write_text("# Good page\n\n## A section\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/good.md) [ok](docs/good.md#a-section) [web](https://example.org)\n"
        "[gone](docs/missing.md) [bad anchor](docs/good.md#no-such-section) [outside](../elsewhere.md)\n"
        "See `docs/nowhere.md` and `docs/good.md`; " + FORBIDDEN[0] + "/x\n"
    )
    (tmp_path / "sb3_tar" / "mod.py").write_text('"""See ``docs/DST.md``."""\n')
    problems = broken_references([tmp_path / "README.md", tmp_path / "sb3_tar" / "mod.py"], root=tmp_path)
    text = "\n".join(problems)
    for expected in ("docs/missing.md", "#no-such-section", "outside the repository", "docs/nowhere.md", "docs/DST.md"):
        assert expected in text, text
    assert FORBIDDEN[0] in text
    assert len(problems) == 7, text  # docs/missing.md is reported as a link and as a path


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
    from sb3_tar.core.streams import stream_generator

    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "def stream_generator" in block)
    namespace: dict = {}
    exec(code, namespace)
    for args in [(0, "actor", "static"), (-3, "critic.qf1", "revival_positions"), (7, "critic.qf0", "dst_update", 250)]:
        assert namespace["stream_generator"](*args).initial_seed() == stream_generator(*args).initial_seed()
