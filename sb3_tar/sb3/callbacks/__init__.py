"""The SB3 callbacks that make a model sparse (:mod:`~sb3_tar.sb3.callbacks.sparse`, their base;
:mod:`~sb3_tar.sb3.callbacks.tar`, :mod:`~sb3_tar.sb3.callbacks.dst`, :mod:`~sb3_tar.sb3.callbacks.baselines` (GMP,
small dense), :mod:`~sb3_tar.sb3.callbacks.cyclic` (cyclic, SCULPT, IEE)) and the one that measures plasticity
(:mod:`~sb3_tar.sb3.callbacks.diagnostics`). Users import them from the thin top-level modules :mod:`sb3_tar.callbacks`,
:mod:`sb3_tar.baselines`, :mod:`sb3_tar.cyclic_methods` and :mod:`sb3_tar.diagnostics` (the names RL-Zoo files and
sweep commands use) or from :mod:`sb3_tar`."""
