module.exports = {
  apps: [
    {
      name: 'calc',
      script: 'calc.js',
      env_staging: {
        NODE_ENV: 'staging',
      },
    },
  ],
};
