"""Thin glue between the pure-PyTorch core (:mod:`sb3_tar.core`, :mod:`sb3_tar.kernels`) and Stable-Baselines3.
The public entry points are the top-level modules :mod:`sb3_tar.sac`, :mod:`sb3_tar.td3`, :mod:`sb3_tar.tqc` and
:mod:`sb3_tar.callbacks`. The folder shows the concerns:

- :mod:`sb3_tar.sb3.networks` (which networks of a policy are sparse), :mod:`sb3_tar.sb3.policies` (the policy
  mixins) and :mod:`sb3_tar.sb3.call_stack` (which SB3 call is under way): the glue every concern uses;
- ``callbacks/``: the callbacks that make a model sparse (TAR, SET/RigL, GMP, small dense, cyclic, SCULPT, IEE) and
  the diagnostics callback, exported by the thin top-level modules :mod:`sb3_tar.callbacks`, :mod:`sb3_tar.baselines`,
  :mod:`sb3_tar.cyclic_methods` and :mod:`sb3_tar.diagnostics`;
- ``execution/``: where masks live, the optimizer hooks that keep them, sparse execution on the C++ kernel;
- ``methods/``: pruning, SET/RigL, GMP, cyclic/SCULPT, IEE and their schedules, the small dense baseline;
- ``persistence/``: exact checkpoints, plain SB3 files, ONNX/TorchScript export;
- ``reporting/``: masks and pruning reports of a model, the ``sparse/`` logger curves, plasticity diagnostics.

In 0.2.0 and earlier these modules lay flat in this folder. :data:`MOVED` maps each old name to its new place, and importing
``sb3_tar.sb3.<old name>`` returns the module itself (the same objects), so code and pickled files (an exact
checkpoint's replay buffer) that name an old path keep working; an ``import`` outside sb3-tar warns.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: ``sb3_tar.sb3.<old name>`` (0.2.0 and earlier) -> the module under ``sb3_tar.sb3`` that it now is.
MOVED = {
    "compressed_dst": "execution.compressed_dst",
    "enforcement": "execution.enforcement",
    "mask_store": "execution.mask_store",
    "sparse_execution": "execution.sparse_execution",
    "cyclic": "methods.cyclic",
    "gradual": "methods.gradual",
    "iee": "methods.iee",
    "pruning": "methods.pruning",
    "rewiring": "methods.rewiring",
    "role_methods": "methods.role_methods",
    "schedules": "methods.schedules",
    "small_dense": "methods.small_dense",
    "step_clock": "methods.step_clock",
    "checkpoint": "persistence.checkpoint",
    "export": "persistence.export",
    "share": "persistence.share",
    "diagnostics": "reporting.diagnostics",
    "model_masks": "reporting.model_masks",
    "report_logging": "reporting.report_logging",
    "reports": "reporting.reports",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``sb3_tar.sb3.<old name>`` of :data:`MOVED` as the module it now is (one module under two names)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in MOVED:
            return None
        caller = sys._getframe(1)
        while caller is not None and "importlib" in caller.f_code.co_filename:
            caller = caller.f_back
        if caller is not None and not caller.f_globals.get("__name__", "").startswith("sb3_tar."):
            warnings.warn(f"{fullname} is now {__name__}.{MOVED[name]}", DeprecationWarning, stacklevel=2)
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # importlib sets module.__spec__ to the alias's spec next
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
