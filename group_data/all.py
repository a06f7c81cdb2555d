# Every user-facing setting, with its default. Override per group (group_data/<group>.py),
# per host (in the inventory) or per run (pyinfra ... --data redis_port=6380).
# Each setting's comment is the one line that the README's settings table shows.

# Redis major version to install (the distro package where the distro ships it).
redis_major_version = 7
# TCP port Redis listens on.
redis_port = 6379
# Addresses Redis binds to; a leading "-" marks an address that may be missing.
redis_bind = "127.0.0.1 -::1"
# Memory limit for the dataset (Redis units: b, k, kb, m, mb, g, gb).
redis_maxmemory = "512mb"
# What Redis evicts when maxmemory is reached.
redis_maxmemory_policy = "allkeys-lru"
# Keyspace notifications: E = keyevent channel, x = expired, e = evicted.
redis_notify_keyspace_events = "Exe"
# The platform's logical databases and the TTL (seconds) their keys should carry; None = no TTL.
redis_keyspace = [
    {"db": 0, "name": "quotes", "ttl": 60},
    {"db": 1, "name": "order-flow", "ttl": 300},
    {"db": 2, "name": "footprint", "ttl": 600},
    {"db": 3, "name": "calculations", "ttl": 1800},
    {"db": 4, "name": "websocket-sessions", "ttl": 3600},
    {"db": 5, "name": "configuration", "ttl": None},
]
# "acl": ACL users with passwords, default user off. "none": no auth at all (warned; loopback only).
redis_auth = "acl"
# ACL user of the apps (REDIS_URL); password from $SMART_REDIS_APP_PASSWORD or generated on the host.
redis_app_user = "smart-trade"
# What the app user may do: data commands and pub/sub on every channel, nothing administrative (narrow channels with &PATTERN).
redis_app_acl = "~* &* +@all -@admin -@dangerous +info"
# ACL user of operators and redis-monitor; password from $SMART_REDIS_ADMIN_PASSWORD or generated.
redis_admin_user = "ops-admin"
# What the admin user may do.
redis_admin_acl = "~* &* +@all"
# Number of logical databases Redis offers.
redis_databases = 16
# RDB snapshot points as "seconds changes" pairs, so that DB 5 survives restarts.
redis_save = "3600 1 300 100 60 10000"
# Listen backlog; the host's net.core.somaxconn is raised to at least this.
redis_tcp_backlog = 511
# Log verbosity: debug, verbose, notice or warning.
redis_loglevel = "notice"
# Events slower than this many milliseconds go to the latency monitor (0 = off).
redis_latency_monitor_threshold_ms = 100
# Commands slower than this many microseconds go to the slow log.
redis_slowlog_log_slower_than_us = 10000
# How many entries the slow log keeps.
redis_slowlog_max_len = 256
# APT repository for distros that do not ship the requested major (Debian 13, Ubuntu 22.04).
redis_apt_repo_url = "https://packages.redis.io/deb"
# Signing key of that repository, stored as a signed-by keyring.
redis_apt_key_url = "https://packages.redis.io/gpg"
# Seconds an apt package index stays fresh before a run that installs something refreshes it.
redis_apt_cache_time = 3600
# Tune the kernel as Redis asks (overcommit, somaxconn, THP); always skipped in containers.
redis_host_tuning = True
# Host name or address the apps use to reach Redis, in REDIS_URL.
redis_url_host = "127.0.0.1"
# The PM2 ecosystem file whose apps get REDIS_URL; None leaves PM2 alone.
pm2_ecosystem_file = "/opt/smart-trade/ecosystem.config.js"
# Names of the apps that get REDIS_URL; None = every app in the file.
pm2_apps = None
# Env blocks that get REDIS_URL where an app has them; an app with none of them gets "env".
pm2_env_blocks = ["env", "env_production"]
# The user whose PM2 daemon runs the apps.
pm2_user = "smart-trade"
# Reload the apps (pm2 startOrReload --update-env, pm2 save) after REDIS_URL changed.
pm2_reload = True
# Members of this group may run redis-monitor (through sudo, as root holds the admin password).
redis_operator_group = "redis-operators"
# Where redis-monitor backup (and the backup job) put RDB snapshots.
redis_backup_dir = "/var/backups/redis"
# How often the backup timer snapshots Redis: hourly, daily, 30min or 15min.
redis_backup_schedule = "hourly"
# Newest snapshots the backup job keeps.
redis_backup_keep_hourly = 48
# Days for which the backup job also keeps that day's newest snapshot.
redis_backup_keep_daily = 14
# A local .rdb to restore on a host whose dataset is empty (rebuild after failure); None = no restore.
redis_restore_from = None
# Restore redis_restore_from even over a dataset that is not empty.
redis_restore_force = False
# fetch_backups.py: local folder for the copies (None = backups/ in this repository), one folder per host.
redis_fetch_dir = None
# fetch_backups.py: copy every snapshot on the host, not just the newest.
redis_fetch_all = False
# redis-monitor health: WARNING at this % of maxmemory, disk or RAM used.
redis_health_warning_pct = 80
# redis-monitor health: CRITICAL at this % of maxmemory, disk or RAM used.
redis_health_critical_pct = 90
# Platform ports that redis-monitor health expects listening on hosts that run the apps.
redis_platform_ports = {"server": 8080, "websocket": 8081, "frontend": 3000}
# Install prometheus-redis-exporter, on 127.0.0.1 only, with its own least-privilege ACL user.
redis_exporter_enabled = True
# ACL user of the exporter; password generated on the host like the others.
redis_exporter_user = "metrics"
# Port of the exporter's /metrics on 127.0.0.1.
redis_exporter_port = 9121
# What the exporter may do: read server state, nothing else.
redis_exporter_acl = "+@connection +info +client|list +client|info +slowlog|get +slowlog|len +latency|latest +latency|histogram +memory|usage +dbsize +select +scan +cluster|info"
# --- High availability: used only on hosts in the redis_primary, redis_replicas or redis_sentinels groups ---
# Address the other Redis hosts, the sentinels and the apps reach this host by; None = its inventory name.
redis_ha_address = None
# The name Sentinel knows the primary by (REDIS_MASTER_NAME for the apps).
redis_ha_master_name = "smart-trade"
# ACL user the replicas log in to the primary with; password shared by every host of the group.
redis_replication_user = "replicator"
# ACL user Sentinel uses on the Redis servers and between sentinels.
redis_sentinel_user = "sentinel"
# TCP port of Redis Sentinel.
redis_sentinel_port = 26379
# The primary refuses writes when fewer replicas than this are connected (0 = never refuse).
redis_min_replicas_to_write = 1
# Replicas count for redis_min_replicas_to_write only while they lag at most this many seconds.
redis_min_replicas_max_lag = 10
# Sentinel calls the primary down after this many milliseconds without an answer.
redis_sentinel_down_after_ms = 5000
# Sentinel's failover timeout in milliseconds (also the pause before it retries a failed one).
redis_sentinel_failover_timeout_ms = 30000
# Let a server that holds keys join as a replica (the primary's data replaces them).
redis_replica_replace_data = False
# Local file (0600) that keeps the passwords every host of the group shares; generated on first use.
redis_ha_secrets_file = "secrets/redis-ha.env"
