module.exports = {
  apps: [
    {
      name: `ws`,
      script: `./ws.js`,
      env: {
        NODE_ENV: `production`,
        REDIS_URL: `redis://app:s3cret@127.0.0.1:6379/0`,
      },
    },
  ],
};
