module.exports = {
  apps: [
    {
      name: 'cli',
      script: 'cli.js',
      args: '--mode env: { REDIS_URL: x }',
      env: {
        BANNER: "apps: [ env: {} ]",
      },
    },
  ],
};
