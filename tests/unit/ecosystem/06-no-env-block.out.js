module.exports = {
  apps: [
    {
      name: 'footprint',
      script: 'footprint.js',
      instances: 2,
      env: { REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0' },
    },
  ],
};
