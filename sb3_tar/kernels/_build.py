"""JIT build of the C++ kernel (``csrc/sparse_linear.cpp``) with :func:`torch.utils.cpp_extension.load`.

The extension is compiled on first use (15-60 s; one line on stderr says so while it builds) and
cached: under torch's default extensions directory (``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``),
or in ``$SB3_TAR_KERNEL_DIR`` if set. It is built with ``-march=native``, so its name carries a short
fingerprint of the CPU and the torch version: a cache shared between machines (a network home
directory) never hands one CPU a binary built for another. The fingerprint also holds a hash of the source
and the folder it is installed in, so each install (an editable checkout, a wheel in a venv) and each source
version has its own build folder in the default cache: switching between installs loads each one's build
instead of rebuilding in turn. ``$SB3_TAR_KERNEL_DIR`` is one folder for whatever uses it: give each install
its own.

A failed build (no C++ compiler, no ninja) is remembered for the process: :func:`kernel_available`
then returns ``False`` and :func:`load_kernel` raises :class:`KernelUnavailableError` with the
compiler's message, without trying again. The full message is also written to a build log
(:func:`kernel_log`); :func:`kernel_summary` is one line naming the cause and that log.

A killed build never blocks later processes. torch guards a build with a ``lock`` file that it removes
when it finishes; a build killed midway (Ctrl-C, SIGKILL, out of memory) leaves that file behind, and
torch then waits for it forever. sb3-tar therefore builds under an OS file lock (``fcntl.flock`` on
``sb3_tar_build.lock`` in the build directory), which the OS releases when its holder dies: a process
holding it is the only one building, so a torch ``lock`` it finds is stale and is removed. The wait for
a live builder is bounded (:data:`LOCK_TIMEOUT_ENV`, default :data:`DEFAULT_LOCK_TIMEOUT` seconds); past
it the build fails with an error naming the lock file. Where ``fcntl`` does not exist (Windows), torch's
own ``lock`` is waited for with the same bound.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).resolve().parent / "csrc" / "sparse_linear.cpp"
KERNEL_DIR_ENV = "SB3_TAR_KERNEL_DIR"
# -ffp-contract=fast: fuse a*b+c into one FMA (GCC turns contraction off under -std=c++17); this only
# changes rounding, unlike -ffast-math, which is not used (it would reassociate sums and drop NaN/inf semantics).
NATIVE_FLAGS = ["-O3", "-march=native", "-ffp-contract=fast"]
PORTABLE_FLAGS = ["-O3", "-ffp-contract=fast"]

#: Seconds to wait for another process's build (environment variable; default below).
LOCK_TIMEOUT_ENV = "SB3_TAR_KERNEL_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 600.0
#: The OS lock file sb3-tar builds under, in the build directory (torch's own is ``lock``).
LOCK_NAME = "sb3_tar_build.lock"
#: The log a failed build is written to, in the build directory (or the temporary directory).
LOG_NAME = "sb3_tar_build_error.log"

_lock = threading.Lock()
_kernel: ModuleType | None = None
_error: str | None = None
_summary: str | None = None
_log: str | None = None
_announced = False


class KernelUnavailableError(RuntimeError):
    """The C++ kernel could not be built or loaded (the message holds the build error)."""


def _cpu_fingerprint() -> str:
    """
    A short hash of what a build depends on: the CPU's instruction-set flags, the machine type, the torch
    version, the kernel's source and the folder sb3-tar is installed in (one build per install).
    """
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86 / ARM
                    flags = line
                    break
    except OSError:
        pass
    try:
        source = hashlib.sha1(SOURCE.read_bytes()).hexdigest()
    except OSError:  # no source: the build fails with its own message
        source = ""
    text = "|".join([platform.machine(), platform.processor(), flags, torch.__version__, source, str(SOURCE.parent)])
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


def _extension_name(flags: list[str]) -> str:
    suffix = "native" if "-march=native" in flags else "portable"
    return f"sb3_tar_sparse_linear_{suffix}_{_cpu_fingerprint()}"


def _build_directory(name: str) -> str:
    """The directory torch builds extension ``name`` in: ``$SB3_TAR_KERNEL_DIR``, else torch's default for it."""
    build_dir = os.environ.get(KERNEL_DIR_ENV)
    if build_dir:
        os.makedirs(build_dir, exist_ok=True)
        return build_dir
    from torch.utils.cpp_extension import _get_build_directory

    return _get_build_directory(name, verbose=False)


def _lock_timeout() -> float:
    text = os.environ.get(LOCK_TIMEOUT_ENV)
    if text is None:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise KernelUnavailableError(f"{LOCK_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    return max(value, 0.0)


@contextmanager
def _build_lock(build_dir: str) -> Iterator[None]:
    """
    Hold the OS lock of ``build_dir`` (released by the OS if this process dies), waiting at most
    :func:`_lock_timeout` seconds, and remove a stale torch ``lock`` left by a killed build.

    :raises KernelUnavailableError: If the wait times out (the message names the lock file).
    """
    timeout = _lock_timeout()
    torch_lock = os.path.join(build_dir, "lock")
    try:
        import fcntl
    except ImportError:  # no flock (Windows): bounded wait on torch's own lock file
        deadline = time.monotonic() + timeout
        while os.path.exists(torch_lock):
            if time.monotonic() > deadline:
                raise KernelUnavailableError(
                    f"timed out after {timeout:.0f} s waiting for the build lock {torch_lock} (a build still running, "
                    f"or left by a killed one: delete the file; {LOCK_TIMEOUT_ENV} sets the wait)"
                ) from None
            time.sleep(0.2)
        yield
        return
    path = os.path.join(build_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KernelUnavailableError(
                        f"timed out after {timeout:.0f} s waiting for the build lock {path}, held by another process "
                        f"building the kernel ({LOCK_TIMEOUT_ENV} sets the wait)"
                    ) from None
                time.sleep(0.2)
        if os.path.exists(torch_lock):  # we are the only builder: a killed build left it
            os.remove(torch_lock)
        yield
    finally:
        os.close(fd)  # releases the flock


def _built(build_dir: str, name: str) -> bool:
    """:return: Whether ``build_dir`` holds a build of extension ``name`` newer than the source."""
    from torch.utils import cpp_extension

    library = os.path.join(build_dir, name + getattr(cpp_extension, "LIB_EXT", ".so"))
    try:
        return os.path.getmtime(library) >= os.path.getmtime(SOURCE)
    except OSError:
        return False


def _announce(build_dir: str) -> None:
    """Print one line to stderr before the first build of this process (the wait would be silent otherwise)."""
    global _announced
    if _announced:
        return
    _announced = True
    print(
        f"sb3-tar: building the sparse C++ kernel (once per install and torch version, usually under a minute) "
        f"in {build_dir} ...",
        file=sys.stderr,
        flush=True,
    )


def _build(flags: list[str], verbose: bool) -> ModuleType:
    from torch.utils.cpp_extension import load

    name = _extension_name(flags)
    build_dir = _build_directory(name)
    if not _built(build_dir, name):
        _announce(build_dir)
    with _build_lock(build_dir):
        return load(name=name, sources=[str(SOURCE)], extra_cflags=flags, build_directory=build_dir, verbose=verbose)


def _one_line(text: str, limit: int = 160) -> str:
    """The line of a build error that says why (a compiler's ``error:``, a missing program), shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys = ("error:", "not found", "No such file", "timed out", "ninja", "Errno")
    short = [line for line in lines if len(line) <= 2 * limit and not line.startswith("[")]
    for key in keys:
        for line in short:
            if key in line:
                return line if len(line) <= limit else line[: limit - 3] + "..."
    first = lines[0] if lines else "unknown error"
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _write_log(text: str) -> str | None:
    """Write the full build error to :data:`LOG_NAME` (build directory, else the temporary directory)."""
    candidates = []
    try:
        candidates.append(_build_directory(_extension_name(PORTABLE_FLAGS)))
    except Exception:  # an unwritable cache directory: use the temporary directory
        pass
    candidates.append(tempfile.gettempdir())
    for directory in candidates:
        path = os.path.join(directory, LOG_NAME)
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            return path
        except OSError:
            continue
    return None


def load_kernel(verbose: bool = False) -> ModuleType:
    """
    Build (first call, or after the source changed) or load the cached C++ kernel.

    Tries ``-march=native`` first and a portable build if that fails (a compiler without the flag).

    :param verbose: Print the compiler's output.
    :return: The extension module (functions ``forward`` and ``backward``).
    :raises KernelUnavailableError: If the kernel cannot be built or loaded; the message holds the
        build error. Later calls raise the same error without rebuilding.
    """
    global _kernel, _error, _summary, _log
    with _lock:
        if _kernel is not None:
            return _kernel
        if _error is not None:
            raise KernelUnavailableError(_error)
        _ninja_on_path()
        errors = []
        last: Exception | None = None
        for flags in (NATIVE_FLAGS, PORTABLE_FLAGS):
            try:
                _kernel = _build(flags, verbose)
                return _kernel
            except Exception as exc:  # a compiler error, a missing ninja, a broken cache: all mean "no kernel"
                errors.append(f"with flags {' '.join(flags)}: {type(exc).__name__}: {exc}")
                last = exc
                if isinstance(exc, KernelUnavailableError):  # another build is running: the portable one would wait too
                    break
        _error = "sb3-tar could not build its sparse C++ kernel (needs a C++ compiler and ninja):\n" + "\n".join(errors)
        _log = _write_log(_error)
        where = f"full build log: {_log}" if _log else "no build log could be written"
        reason = str(last) if isinstance(last, KernelUnavailableError) else _one_line(f"{type(last).__name__}: {last}")
        _summary = f"{reason} ({where})"
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


def kernel_summary() -> str | None:
    """
    One line saying why the kernel could not be built, and where the full build log is.

    :return: The line, or ``None`` if the kernel loaded or was not tried yet.
    """
    return _summary


def kernel_log() -> str | None:
    """
    :return: The path of the log holding the full error of the failed build (``None`` if none was written).
    """
    return _log
