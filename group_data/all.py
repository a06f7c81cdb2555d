# Settings for every host of this repository's inventories (pyinfra host data). The defaults are
# the package's own (smart_redis/settings.py, the README's Settings table): set here only what
# differs for all of your hosts, e.g. `redis_maxmemory = "1gb"` or the SSH settings.
