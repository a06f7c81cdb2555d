module.exports = {
  apps: [
    { name: 'api', script: 'api.js', env: { NODE_ENV: 'production' } },
    { name: 'ws', script: 'ws.js', env: { NODE_ENV: 'production' } },
    { name: 'frontend', script: 'front.js', env: { NODE_ENV: 'production' } },
  ],
};
