"""Sans-I/O iSCSI protocol core (RFC 7143)."""

from __future__ import annotations


def compiled() -> bool:
    """Whether the data path in use was compiled by mypyc (setup.py, docs/packaging.md).

    A compiled module is an extension imported in place of the ``.py`` beside it; the
    pure-Python build is the reference and behaves the same.
    """
    from iscsikit.proto import ffp_receive

    return not ffp_receive.__file__.endswith(".py")
