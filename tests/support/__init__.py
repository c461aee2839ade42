"""Helpers the test folders share, imported as ``tests.support.<module>`` (pytest puts the
repository root on ``sys.path``: ``pythonpath`` in pyproject.toml).

- ``profiler_fakes``: fakes at the hardware boundary (pynvml, powercap, CodeCarbon's CPU model)
- ``harness_configs``: tiny synthetic configs; ``dist_models``: a model factory for the
  distributed tests; ``toy_plugins``: a method and a task from outside the package
- ``flops_zoo``: the FLOP tests' models; ``sparse_grads``: the sparse gradients' reference
- ``integration_loops``: the run the integration tests record
- ``report_store``: hand-made results stores; ``html_tables``: a report page's tables as text
"""
