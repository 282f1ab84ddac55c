"""What leaves the process: exact checkpoints and their resume (:mod:`.checkpoint`), plain SB3 files
(:mod:`.share`) and ONNX/TorchScript actors (:mod:`.export`)."""
