module.exports = {
  apps: [
    {
      name: `ws`,
      script: `./ws.js`,
      env: {
        NODE_ENV: `production`,
        REDIS_URL: `redis://127.0.0.1:6379`,
      },
    },
  ],
};
