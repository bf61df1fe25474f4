"""Testing helpers for projects that use daidai.

The pytest plugin (`daidai.testing.pytest_plugin`) loads by itself once daidai is installed:
fixtures `daidai_cache`, `daidai_manager`, `daidai_manager_factory`, `daidai_overrides` and
`daidai_no_network`, markers `daidai_overrides` and `daidai_no_network`.
"""
