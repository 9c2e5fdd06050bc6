"""open-iscsi's iscsid, seen from outside: whether it is running.

iscsikitd leaves the kernel sessions of a running iscsid alone (they are its own), and the
command line says so when it cannot act on one of them without iscsikitd.
"""

from __future__ import annotations

import socket

#: Where open-iscsi's iscsid listens for iscsiadm (an abstract unix socket).
ISCSID_SOCKET = b"\0ISCSIADM_ABSTRACT_NAMESPACE"


def iscsid_running(timeout: float = 1.0) -> bool:
    """Whether open-iscsi's iscsid accepts connections on its socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(ISCSID_SOCKET)
    except OSError:
        return False
    finally:
        sock.close()
    return True
