"""Provision the Smart-Trade Redis server with pyinfra: `deploy_redis()` inside any deploy.

    from smart_redis import deploy_redis
    deploy_redis()

smart_redis.deploy holds the order of steps; each other module here is one concern.
"""

from .deploy import deploy_redis

__all__ = ["deploy_redis"]
