"""Sans-I/O iSCSI protocol core (RFC 7143)."""
