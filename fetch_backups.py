"""Copy each host's newest Redis snapshot (or all: --data redis_fetch_all=true) to this machine.

    pyinfra inventory/production.py fetch_backups.py      # -> backups/<host>/dump-...rdb (+ .counts.json)

The copies go to redis_fetch_dir, by default backups/ beside this file (README "Settings" says
how relative paths resolve). Each copy is checked against the host's SHA-256 after the transfer.
"""

from pyinfra import host

from smart_redis import fetch, settings

fetch.snapshots(settings.load(host.data))
