"""iscsikitd: the daemon that owns sessions and answers the command line over IPC.

- :mod:`iscsikit.daemon.server` -- the asyncio IPC server (socket, credentials, bounds,
  dispatch to one handler);

The daemon only moves requests to :mod:`iscsikit.manager` and answers; decisions live there.
Nothing is imported eagerly: ``import iscsikit.daemon.server`` loads only what it needs.
"""
