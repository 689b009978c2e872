"""Training: the schedule (the loop, checkpoints and distribution to come)."""
