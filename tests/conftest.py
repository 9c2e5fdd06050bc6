"""Test-suite-wide configuration. iscsikit's own fixtures (tgtd_factory, tgtd,
scripted_target) come from the installed pytest plugin ``iscsikit.testing.plugin``."""

# pytester runs the plugin's CI rules against throw-away test files (test_harness.py).
pytest_plugins = ("pytester",)
