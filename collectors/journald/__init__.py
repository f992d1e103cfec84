"""journald collector: sshd, sudo, su and sftp-server messages from the systemd journal."""
