"""Integrations with engines that run daidai components elsewhere (Dask workers, ...).

Each lives in its own module and imports its engine only there.
"""
