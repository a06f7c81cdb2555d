const config = {
  apps: [
    {
      name: 'orders',
      script: 'orders.js',
      env_production: {
        NODE_ENV: 'production',
      },
    },
  ],
};

module.exports = config;
