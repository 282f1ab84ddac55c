"""How a sparse SB3 model runs: where its masks live (:mod:`.mask_store`), the optimizer hooks that keep them
(:mod:`.enforcement`), the sparse C++ kernel inside a policy (:mod:`.sparse_execution`) and SET/RigL on its
compressed layers (:mod:`.compressed_dst`)."""
