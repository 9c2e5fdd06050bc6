"""Stand-alone command-line tools over the Python API (``iscsikit-ls``, ``iscsikit-perf``).

Each module has ``main(argv=None) -> int``; errors become iscsiadm's exit codes
(bad arguments 7, an :class:`~iscsikit.errors.IscsiError` its ``.code``).
"""
