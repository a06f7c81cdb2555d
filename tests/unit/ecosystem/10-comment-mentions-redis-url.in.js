// REDIS_URL is set by the Redis deploy: do not add it here.
module.exports = {
  apps: [
    {
      name: 'api',
      script: 'server.js',
      env: {
        NODE_ENV: 'production', // REDIS_URL: 'redis://nowhere'
        /* REDIS_URL: "redis://old" */
      },
    },
  ],
};
