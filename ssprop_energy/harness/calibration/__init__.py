"""Prices measured on this machine and what they predict: the planned runs, step prices, the
differential phases and the estimate."""
