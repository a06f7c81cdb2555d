"""Provision the Smart-Trade Redis server (README "Running it"): pyinfra inventory/production.py deploy.py"""

from smart_redis import deploy_redis

deploy_redis()
