"""JIT build of the C++ kernel (``csrc/sparse_linear.cpp``) with :func:`torch.utils.cpp_extension.load`.

The extension is compiled on first use (tens of seconds) and cached: under torch's default
extensions directory (``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``), or under
``$SB3_TAR_KERNEL_DIR`` if set. It is built with ``-march=native``, so its name carries a short
fingerprint of the CPU and the torch version: a cache shared between machines (a network home
directory) never hands one CPU a binary built for another.

A failed build (no C++ compiler, no ninja) is remembered for the process: :func:`kernel_available`
then returns ``False`` and :func:`load_kernel` raises :class:`KernelUnavailableError` with the
compiler's message, without trying again.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).resolve().parent / "csrc" / "sparse_linear.cpp"
KERNEL_DIR_ENV = "SB3_TAR_KERNEL_DIR"
# -ffp-contract=fast: fuse a*b+c into one FMA (GCC turns contraction off under -std=c++17); this only
# changes rounding, unlike -ffast-math, which is not used (it would reassociate sums and drop NaN/inf semantics).
NATIVE_FLAGS = ["-O3", "-march=native", "-ffp-contract=fast"]
PORTABLE_FLAGS = ["-O3", "-ffp-contract=fast"]

_lock = threading.Lock()
_kernel: ModuleType | None = None
_error: str | None = None


class KernelUnavailableError(RuntimeError):
    """The C++ kernel could not be built or loaded (the message holds the build error)."""


def _cpu_fingerprint() -> str:
    """A short hash of the CPU's instruction-set flags, the machine type and the torch version."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86 / ARM
                    flags = line
                    break
    except OSError:
        pass
    text = "|".join([platform.machine(), platform.processor(), flags, torch.__version__])
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _ninja_on_path() -> None:
    """Put the ``ninja`` wheel's binary on ``PATH`` when the interpreter's environment is not activated."""
    try:
        import ninja  # the PyPI wheel

        bin_dir = getattr(ninja, "BIN_DIR", None)
    except ImportError:
        return
    if bin_dir and os.path.isdir(bin_dir) and bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _build(flags: list[str], verbose: bool) -> ModuleType:
    from torch.utils.cpp_extension import load

    build_dir = os.environ.get(KERNEL_DIR_ENV) or None
    if build_dir is not None:
        os.makedirs(build_dir, exist_ok=True)
    suffix = "native" if "-march=native" in flags else "portable"
    return load(
        name=f"sb3_tar_sparse_linear_{suffix}_{_cpu_fingerprint()}",
        sources=[str(SOURCE)],
        extra_cflags=flags,
        build_directory=build_dir,
        verbose=verbose,
    )


def load_kernel(verbose: bool = False) -> ModuleType:
    """
    Build (first call, or after the source changed) or load the cached C++ kernel.

    Tries ``-march=native`` first and a portable build if that fails (a compiler without the flag).

    :param verbose: Print the compiler's output.
    :return: The extension module (functions ``forward`` and ``backward``).
    :raises KernelUnavailableError: If the kernel cannot be built or loaded; the message holds the
        build error. Later calls raise the same error without rebuilding.
    """
    global _kernel, _error
    with _lock:
        if _kernel is not None:
            return _kernel
        if _error is not None:
            raise KernelUnavailableError(_error)
        _ninja_on_path()
        errors = []
        for flags in (NATIVE_FLAGS, PORTABLE_FLAGS):
            try:
                _kernel = _build(flags, verbose)
                return _kernel
            except Exception as exc:  # a compiler error, a missing ninja, a broken cache: all mean "no kernel"
                errors.append(f"with flags {' '.join(flags)}: {type(exc).__name__}: {exc}")
        _error = "sb3-tar could not build its sparse C++ kernel (needs a C++ compiler and ninja):\n" + "\n".join(errors)
        raise KernelUnavailableError(_error)


def kernel_available() -> bool:
    """
    Whether the C++ kernel can be used (builds it on the first call).

    :return: ``True`` if :func:`load_kernel` succeeds; otherwise ``False`` and :func:`kernel_error` tells why.
    """
    try:
        load_kernel()
    except KernelUnavailableError:
        return False
    return True


def loaded_kernel() -> ModuleType | None:
    """
    The kernel module for the hot path: no lock once loaded, builds it on the first call.

    :return: The extension module, or ``None`` if it cannot be built (see :func:`kernel_error`).
    """
    if _kernel is not None:
        return _kernel
    try:
        return load_kernel()
    except KernelUnavailableError:
        return None


def kernel_error() -> str | None:
    """
    The build error of the kernel, if building it failed in this process.

    :return: The error text, or ``None`` if the kernel loaded or was not tried yet.
    """
    return _error
