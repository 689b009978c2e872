"""Training: the schedule, checkpoints and the loop (the command and DDP to come)."""
