"""One run, from its built parts to how it ended: the build, the training loop, its epoch
rows, metering, power trace, checkpoint and inference cost."""
