"""The sparse training methods inside SB3's training loop: pruning at initialization (:mod:`.pruning`,
:mod:`.role_methods`), SET/RigL (:mod:`.rewiring`), GMP (:mod:`.gradual`), cyclic/SCULPT (:mod:`.cyclic`), IEE
(:mod:`.iee`), what they share (:mod:`.step_clock`, :mod:`.schedules`) and the small dense baseline
(:mod:`.small_dense`)."""
