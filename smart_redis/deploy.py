"""The whole deploy as one pyinfra @deploy: the order of steps, one line (and one comment) each.

    from smart_redis import deploy_redis
    deploy_redis()          # inside any pyinfra deploy file; settings from host data

Hosts in the inventory groups redis_primary / redis_replicas / redis_sentinels form a replicated
topology that Redis Sentinel fails over; any other host is a single server.
"""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.api import deploy

from . import (
    alerting,
    auth,
    backup,
    config,
    exporter,
    install,
    move,
    planning,
    pm2,
    preflight,
    replication,
    restore,
    rotation,
    run,
    sentinel,
    service,
    settings,
    tls,
    tools,
    topology,
    tuning,
)
from .operations import host_state

planning.install()  # pyinfra orders our operations from the frames, not from their source files


# data_defaults: pyinfra's way for a reusable deploy to give its settings' defaults to host data;
# group, host and --data values override them.
@deploy("Smart-Trade Redis", data_defaults=settings.defaults())
def deploy_redis() -> None:
    """
    Provision the Smart-Trade Redis server on the current host, from the settings in its host
    data (the README's Settings table; every one has a default).

    **Example:**

    .. code:: python

        from smart_redis import deploy_redis

        deploy_redis()
    """
    wanted = settings.load(host.data)  # a bad setting stops the run here, before the host is touched
    run.serve(wanted.server)  # Redis or Valkey: the steps below find its unit, files and CLI in the run
    ha = topology.load(host, inventory, wanted)  # standalone, or primary/replica/sentinel from the groups
    wanted = topology.with_own_address(wanted, ha)  # redis_bind gains an address found on the host
    tls.refuse_in_group(wanted, ha)
    auth.app_rules(wanted, ha)  # refused here: app channel rules that would reach Sentinel's hello channel
    certificates = tls.certificates(wanted, ha)  # checked here; the project's CA issues them if needed
    tls_files = tls.host_files(certificates)  # where the host keeps them
    passwords = auth.passwords(wanted, ha)  # the operator's, and in a Sentinel group the group's shared ones
    passwords = rotation.renew_shared_passwords(wanted, ha, passwords)  # redis_rotate_passwords, once per run
    config.expect_running(wanted, ha, tls_files)  # what the config step asks the server rides on that round trip
    facts = host_state()  # one round trip answers every step below
    run.start(name="Start the run", group=ha.group)  # a group's run in order; the operator's files once confirmed
    tls.refuse_switch_in_group(wanted, ha, facts)  # a running group keeps its TLS mode

    preflight.check(wanted, facts)
    moving = move.moving_from(wanted, facts, ha)  # redis_server changed on a host that runs the other one
    pm2.preflight(wanted, ha)  # a missing ecosystem file stops the run before anything changes
    sandbox = service.container_sandbox(facts)  # before the package first starts the service
    exporter_unit = exporter.unit_before_install(wanted, facts)  # likewise for the exporter
    backup_units = backup.units(wanted)  # the backup job and timer, enabled below
    units = [sandbox, exporter_unit, *backup_units]  # one command for all, one daemon-reload
    early = service.before_install(facts, units, tools.step_program())  # with the program our host-side steps run
    sentinel.before_install(ha, facts)  # and Sentinel stays masked until it is configured
    move.hold_new_server(moving, facts)  # likewise the new server, until the move starts it on the data
    install.redis_packages(wanted, facts, sentinel=ha.runs_sentinel)
    tuning.kernel(wanted, facts)
    service.redis_server(facts, early, sandbox, moving=moving is not None and not moving.done)
    auth.warn_if_open(wanted)
    rotating = rotation.begin(wanted, ha, passwords, facts)  # a new password: the old one stays until nothing uses it
    renew = rotation.renewed_roles(wanted, ha, passwords)  # redis_rotate_passwords on a single server
    credentials = auth.credentials(
        name="Keep the ACL users' passwords", settings=wanted, given=passwords, topology=ha, renew=renew
    )
    rotation.accept_new(wanted, ha, rotating)  # on every host, before any login moves to a new password
    runs = move.runs_now(moving, wanted.server)  # the server that reads the TLS files until its move
    tls.install(certificates, runs)  # before redis.conf names the files
    tls.install_sentinel(certificates, ha, runs)  # Sentinel's copies, under names that stay (every group host)
    joining = replication.replica_setup(ha, passwords, facts, rotating, bool(moving))  # masterauth, read-only conf
    config.redis_conf(
        wanted, passwords, ha, credentials, joining, rotating, tls_files, moving
    )  # replicaof: Sentinel's primary
    restore.from_snapshot(wanted, tls.deploy_cli(wanted, tls_files))  # --data redis_restore_from=..., empty server
    sentinel.configure(wanted, ha, passwords, moving)  # sentinel.conf once (a moving host's keeps the old one's id)
    move.remove_old(moving, facts)  # the old server's packages (and its Sentinel's), once the new ones run
    sentinel.running(wanted, ha)  # restarted on a new binary or certificate; its timing kept in step
    rotation.sentinel_logins(wanted, ha, rotating)  # auth-pass and sentinel-pass move to the new password
    tools.redis_monitor(wanted, ha)  # the operator's tool on the host
    backup.snapshots(facts, early)  # the timer enabled, and a first snapshot
    alerting.alerts(wanted, ha, facts)  # a message to a person when the checks change state
    tls.publish_ca(certificates)  # where the apps' NODE_EXTRA_CA_CERTS points
    pm2.ecosystem(wanted, ha, rotating)  # REDIS_URL (and the sentinels) for the apps, reloaded under PM2
    exporter.redis_exporter(wanted, exporter_unit, tls_files)  # metrics on 127.0.0.1
    rotation.finish(wanted, ha, rotating)  # last: the replaced passwords go once every login has moved
    config.forget_replaced_passwords(wanted, passwords, ha, credentials, rotating, tls_files)  # and leave redis.conf
    tls.forget_old(certificates, ha)  # the server has loaded the certificate redis.conf names
