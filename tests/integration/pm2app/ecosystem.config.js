// Smart-Trade apps, owned by the app team. The deploy may only touch REDIS_URL.
module.exports = {
  apps: [
    {
      name: 'quotes-feed',
      script: './app.js',
      env: {
        NODE_ENV: "production", // REDIS_URL comes from the Redis deploy
      },
    },
  ],
};
