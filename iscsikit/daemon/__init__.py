"""iscsikitd: the daemon that owns sessions and answers the command line over IPC.

- :mod:`iscsikit.daemon.server` -- the asyncio IPC server (socket, credentials, bounds,
  dispatch to one handler);
- :mod:`iscsikit.daemon.service` -- the operations over the session manager, start-up
  logins, shutdown;
- :mod:`iscsikit.daemon.exports` -- userspace sessions' LUNs served over NBD;
- :mod:`iscsikit.daemon.main` -- ``iscsikitd``'s command line, signals, detaching.

The daemon only moves requests to :mod:`iscsikit.manager` and answers; decisions live there.
Nothing is imported eagerly: ``import iscsikit.daemon.server`` loads only what it needs.
"""
