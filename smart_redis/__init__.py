"""Steps, facts and operations that provision the Smart-Trade Redis server.

deploy.py calls the steps in order; each module here is one concern.
"""
