"""batchframe's benchmark suite: ``python -m benchmarks`` (see docs/benchmarks.md).

Nothing here is imported by the library. The peers' scripts run in their own virtual
environment (.venv-peers, made by benchmarks/peers_setup.sh) and import only ``data`` and
``measure`` from this package, which therefore must not import batchframe at module level.
"""
