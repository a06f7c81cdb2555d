module.exports = {
  apps: [
    {
      name: 'api',
      script: 'server.js',
      env: {
        REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0',
      },
    },
  ],
};
