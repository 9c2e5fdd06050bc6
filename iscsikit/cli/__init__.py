"""``iscsikit-adm``: the iscsiadm-compatible command line (see docs/cli-contract.md).

Entry points: :func:`iscsikit.cli.main.main` (``main(argv, env=...) -> int``) and
:func:`iscsikit.cli.main.run` (the console script).  Nothing is imported here, so that
importing a submodule stays cheap.
"""
