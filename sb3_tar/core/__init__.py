"""The method in pure PyTorch (no Stable-Baselines3): configuration, random streams, exact selection, masks,
the static criteria, TAR and Uniform Revival, pruning one network start to end, its report, and SET/RigL's
drop-and-grow. Every module here works on any ``torch.nn.Module``; docs/method.md states what they compute."""
