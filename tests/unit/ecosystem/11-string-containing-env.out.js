module.exports = {
  apps: [
    {
      name: 'cli',
      script: 'cli.js',
      args: '--mode env: { REDIS_URL: x }',
      env: {
        BANNER: "apps: [ env: {} ]",
        REDIS_URL: "redis://app:s3cret@127.0.0.1:6379/0",
      },
    },
  ],
};
