"""The golden battery: iscsikit-adm against real iscsiadm 2.1.8, invocation by invocation.

``cases.py`` holds the battery as data, ``harness.py`` runs a case through either tool,
``expected/`` keeps what iscsiadm printed (so the comparison also runs where open-iscsi
is absent), ``scripts/`` holds an ordinary iscsiadm admin script run with both tools.
"""
