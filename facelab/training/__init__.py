"""Training: the loop, optimizers and schedules, devices and precision, distributed runs, checkpoints, gradient health."""
