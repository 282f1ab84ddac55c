"""Sphinx configuration: the Markdown guide (MyST) and the API reference (autodoc).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (warnings are errors).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout's sb3_tar, whatever is installed

import sb3_tar  # noqa: E402

project = "sb3-tar"
author = "sb3-tar contributors"
copyright = "sb3-tar contributors"
version = release = sb3_tar.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: $...$ is not math here; headings get anchors so pages can link to sections.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# API reference: members in source order, type hints in the description rather than the signature.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"sb3-tar {release}"
html_static_path: list[str] = []
