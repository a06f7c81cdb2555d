module.exports = {
  apps: [
    {
      name: 'calc',
      script: 'calc.js',
      env_staging: {
        NODE_ENV: 'staging',
      },
      env: { REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0' },
    },
  ],
};
