# The throwaway container that `make demo` starts (tests/testbed.py start redis-demo).
hosts = ["@docker/redis-demo"]
