const config = {
  apps: [
    {
      name: 'orders',
      script: 'orders.js',
      env_production: {
        NODE_ENV: 'production',
        REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0',
      },
    },
  ],
};

module.exports = config;
