"""Discovery: SendTargets against a portal (and, later, iSNS and firmware), and what
each discovery does to the node database."""
