"""Provision the Smart-Trade Redis server.

    pyinfra inventory/production.py deploy.py       # servers over SSH
    pyinfra @docker/redis-demo deploy.py             # a container
"""

from pyinfra import host

from smart_redis import auth, backup, config, exporter, install, pm2, preflight, restore, service, settings, tools, tuning
from smart_redis.operations import host_state

redis = settings.load(host.data)  # a bad setting stops the run here, before the host is touched
passwords = auth.operator_passwords()  # from the environment, if the operator set any
facts = host_state()  # one round trip answers every step below

preflight.check(redis, facts)
sandbox = service.container_sandbox(facts)  # before the package first starts the service
exporter_unit = exporter.unit_before_install(redis, facts)  # likewise for the exporter
install.redis_packages(redis, facts)
tuning.kernel(redis, facts)
service.redis_server(facts, sandbox)
auth.warn_if_open(redis)
credentials = auth.credentials(name="Keep the ACL users' passwords", settings=redis, given=passwords)
config.redis_conf(redis, passwords)  # applied at runtime where Redis can, restarted where it must
restore.from_snapshot(redis)  # only with --data redis_restore_from=..., only into an empty server
tools.redis_monitor(redis)  # the operator's tool on the host
backup.snapshots(redis)  # the timer, and a first snapshot
pm2.ecosystem(redis)  # REDIS_URL for the apps, reloaded under PM2
exporter.redis_exporter(redis, exporter_unit, credentials)  # metrics on 127.0.0.1
