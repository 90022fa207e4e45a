"""Training: one readable step, the fit loop with callbacks, and DDP under torchrun."""
