"""``python -m ssprop_energy``: the ``ssprop-energy`` command line (what ``torchrun ... -m
ssprop_energy profile model.yaml`` starts on every rank)."""

from ssprop_energy.cli import main

main()
