"""Training: the loop, optimizers and schedules, distributed runs, checkpoints, gradient health."""
