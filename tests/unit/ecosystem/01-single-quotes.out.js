module.exports = {
  apps: [
    {
      name: 'api',
      script: './server.js',
      env: {
        NODE_ENV: 'development',
        PORT: 8080,
        REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0',
      },
      env_production: {
        NODE_ENV: 'production',
        REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0',
      },
    },
  ],
};
