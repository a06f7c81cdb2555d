# The throwaway container that `make demo` starts (tests/testbed.py start redis-demo).
# It runs no Node.js apps, so there is no PM2 ecosystem file to give REDIS_URL to.
hosts = [("@docker/redis-demo", {"pm2_ecosystem_file": None})]
