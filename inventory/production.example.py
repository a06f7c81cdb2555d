# Copy to inventory/production.py, fill in your servers, then:
#   .venv/bin/pyinfra inventory/production.py deploy.py
# Settings for every host go in group_data/all.py (defaults: the README's Settings table); per-host ones in the host's dict.
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

# More than one machine (README "More than one machine"): a primary, two replicas, and a
# Sentinel on each. Every host needs an address the others reach, inside its redis_bind, and the
# SSH settings above (put them in group_data/all.py, or repeat them here, for these groups).
#
# SSH = {"ssh_user": "deploy", "ssh_key": "~/.ssh/id_ed25519", "_sudo": True}
# def ha(address):
#     return {**SSH, "redis_ha_address": address, "redis_bind": f"127.0.0.1 -::1 {address}"}
# redis_primary = [("redis-1.example.internal", ha("10.0.0.11"))]
# redis_replicas = [("redis-2.example.internal", ha("10.0.0.12")), ("redis-3.example.internal", ha("10.0.0.13"))]
# redis_sentinels = ["redis-1.example.internal", "redis-2.example.internal", "redis-3.example.internal"]
