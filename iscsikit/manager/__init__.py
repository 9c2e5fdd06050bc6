"""Session policy: redirects, retries, timers.  Decisions live here, not in drivers."""
