"""Configuration: iscsid.conf, the key registry, the initiator name."""
