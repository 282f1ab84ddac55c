"""What is measured and logged: the masks of a model (:mod:`.model_masks`), its pruning reports (:mod:`.reports`),
the ``sparse/`` curves in SB3's logger (:mod:`.report_logging`) and plasticity diagnostics (:mod:`.diagnostics`)."""
