module.exports = {
  apps: [
    {
      name: 'footprint',
      script: 'footprint.js',
      instances: 2,
    },
  ],
};
