"""Provision the Smart-Trade Redis server.

    pyinfra inventory/production.py deploy.py       # servers over SSH
    pyinfra @docker/redis-demo deploy.py             # a container

Hosts in the inventory groups redis_primary / redis_replicas / redis_sentinels form a replicated
topology that Redis Sentinel fails over; any other host is a single server.
"""

from pyinfra import host, inventory

from smart_redis import auth, backup, config, exporter, install, pm2, preflight, replication, restore, sentinel
from smart_redis import service, settings, tools, topology, tuning
from smart_redis.operations import host_state

redis = settings.load(host.data)  # a bad setting stops the run here, before the host is touched
ha = topology.load(host, inventory, redis)  # standalone, or primary/replica/sentinel from the groups
passwords = auth.passwords(redis, ha)  # the operator's, and in a Sentinel group the group's shared ones
facts = host_state()  # one round trip answers every step below
replication.refuse_rotation(ha, passwords, facts)  # a group's shared passwords are not changed in passing

preflight.check(redis, facts)
pm2.preflight(redis, ha)  # a missing ecosystem file stops the run before anything changes
sandbox = service.container_sandbox(facts)  # before the package first starts the service
exporter_unit = exporter.unit_before_install(redis, facts)  # likewise for the exporter
sentinel.before_install(ha, facts)  # and Sentinel stays masked until it is configured
install.redis_packages(redis, facts, sentinel=ha.runs_sentinel)
tuning.kernel(redis, facts)
service.redis_server(facts, sandbox)
auth.warn_if_open(redis)
config.keep_running_admin(passwords)  # the SAVE before a restart for a new admin password logs in with the old one
credentials = auth.credentials(name="Keep the ACL users' passwords", settings=redis, given=passwords, topology=ha)
joining = replication.replica_setup(ha, passwords, facts)  # masterauth, read-only redis.conf
config.redis_conf(redis, passwords, ha, joining)  # replicaof: where Sentinel says the primary is now
restore.from_snapshot(redis)  # only with --data redis_restore_from=..., only into an empty server
sentinel.sentinel(redis, ha, passwords)  # sentinel.conf once; Sentinel owns it afterwards
tools.redis_monitor(redis, ha)  # the operator's tool on the host
backup.snapshots(redis, facts)  # the timer, and a first snapshot
pm2.ecosystem(redis, ha)  # REDIS_URL (and the sentinels) for the apps, reloaded under PM2
exporter.redis_exporter(redis, exporter_unit, credentials)  # metrics on 127.0.0.1
