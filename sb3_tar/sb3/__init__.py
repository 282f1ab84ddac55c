"""Thin glue between the pure-PyTorch core (:mod:`sb3_tar.core`, :mod:`sb3_tar.kernels`) and Stable-Baselines3:
which networks of an SB3 policy are sparse, where their masks live, the optimizer hooks that keep them, the
policy mixins, SET/RigL inside SB3's training loop, diagnostics, logging and sparse execution. The public
entry points are the top-level modules :mod:`sb3_tar.sac`, :mod:`sb3_tar.td3`, :mod:`sb3_tar.tqc` and
:mod:`sb3_tar.callbacks`."""
