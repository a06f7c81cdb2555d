module.exports = {
  apps: [
    {
      name: 'api',
      script: 'server.js',
      env: {
        NODE_ENV: 'production',
        REDIS_URL: 'redis://localhost:6379', // the old hand-made setup
        LOG_LEVEL: 'info',
      },
    },
  ],
};
