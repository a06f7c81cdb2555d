module.exports = {
  apps: [
    {
      name: 'api',
      script: './server.js',
      env: {
        NODE_ENV: 'development',
        PORT: 8080,
      },
      env_production: {
        NODE_ENV: 'production',
      },
    },
  ],
};
