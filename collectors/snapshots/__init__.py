"""psutil / /proc snapshots of login sessions: connections, forwards, processes, transfers, resources."""
