module.exports = {
  apps: [
    { name: 'api', script: 'api.js', env: { NODE_ENV: 'production', REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0' } },
    { name: 'ws', script: 'ws.js', env: { NODE_ENV: 'production' } },
    { name: 'frontend', script: 'front.js', env: { NODE_ENV: 'production', REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0' } },
  ],
};
