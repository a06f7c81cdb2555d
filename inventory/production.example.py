# Copy to inventory/production.py, fill in your servers, then:
#   .venv/bin/pyinfra inventory/production.py deploy.py
# Settings for every host live in group_data/all.py; per-host ones go in the host's dict.
# Host keys: unknown keys are accepted on first contact and recorded (pyinfra's accept-new);
# a changed key fails the run. Check a new server's fingerprint before its first run
# (docs/rebuild.md says how).
redis_servers = (
    [
        ("redis-1.example.internal", {"redis_maxmemory": "1gb"}),
    ],
    {
        "ssh_user": "deploy",  # a non-root user with passwordless sudo
        "ssh_port": 22,
        "ssh_key": "~/.ssh/id_ed25519",
        # "ssh_known_hosts_file": "~/.ssh/known_hosts",  # the default
        # sudo for SSH hosts only: @docker targets have no sudo.
        "_sudo": True,
    },
)
