"""Transport drivers shipped with iscsikit (installed as ``iscsikit_drivers``).

Each sub-package registers itself through the ``iscsikit`` entry-point group, exactly
as an out-of-tree vendor driver would.
"""
