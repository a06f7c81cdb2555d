// REDIS_URL is set by the Redis deploy: do not add it here.
module.exports = {
  apps: [
    {
      name: 'api',
      script: 'server.js',
      env: {
        NODE_ENV: 'production', // REDIS_URL: 'redis://nowhere'
        REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0',
        /* REDIS_URL: "redis://old" */
      },
    },
  ],
};
