"""The harness: the YAML config, the run matrix, the run builder, the trainer and the runner."""
