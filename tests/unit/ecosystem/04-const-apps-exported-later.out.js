const apps = [
  {
    name: 'quotes',
    script: 'quotes.js',
    env: { NODE_ENV: 'production', REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0' },
  },
];

module.exports = { apps };
