module.exports = {
  apps: [
    {
      name: 'api',
      script: 'server.js',
      env: {
        REDIS_URL: process.env.REDIS_URL || 'redis://localhost:6379',
      },
    },
  ],
};
