"""The programs that run on the managed host, and how each ships there as one file.

Standard library only (tests/unit/test_host_stdlib.py proves it): the host runs them with its
system python3 and the deploy installs nothing else for them. One module per concern:

    resp         the RESP client (Redis)             info        INFO text as data
    credentials  the root-only credentials file      pm2         PM2's process list (pm2 jlist)
    quorum       replication and the sentinels' view counts      key counts at backup, checked at restore
    snapshots    BGSAVE and the snapshot rotation    health      health's checks besides Redis
    output       tables and --json                   levels      Nagios levels
    ttl_report   ttl-report's SCAN sample, arithmetic and recommendation rules
    checks       what health prints and alert watches
    alerts       the alert state machine and messages      receivers   webhook, Telegram, sendmail
    alert_run    redis-monitor alert and alert-test
    ecosystem_text  the JS/JSON ecosystem file's tokenizer and text edit
    owned_files  file work as the file's owner       node_check  node's view of the edited file
    server       redis-server's unit, files, admin login
    secret_files the credentials file and the root-only files derived from it
    restart      SAVE, restart with rollback, waiting for the replicas
    handover     the primary's planned handover through Sentinel
    rotation     a password rotation's steps: keep, accept both, switch Sentinel, retire
    restore_swap the restore's swap of the dataset, checked or undone
    monitor      redis-monitor's command line        ecosystem   the ecosystem editor's command line
    steps        the deploy's host-side steps (smart-redis-step)

bundle (run by the deploy, not on the host) turns monitor, ecosystem and steps into one python3 file
each: /usr/local/bin/redis-monitor, /usr/local/lib/smart-redis/ecosystem.py and
/usr/local/lib/smart-redis/step.py.
"""
