# Copy to inventory/production.py, fill in your servers, then:
#   pyinfra inventory/production.py deploy.py
# Settings for every host live in group_data/all.py; per-host ones go in the tuple's dict.
redis_servers = (
    [
        ("redis-1.example.internal", {"redis_maxmemory": "1gb"}),
    ],
    {
        "ssh_user": "deploy",
        "ssh_port": 22,
        "ssh_key": "~/.ssh/id_ed25519",
        # sudo for SSH hosts only: @docker targets have no sudo.
        "_sudo": True,
    },
)
