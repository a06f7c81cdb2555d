const apps = [
  {
    name: 'quotes',
    script: 'quotes.js',
    env: { NODE_ENV: 'production' },
  },
];

module.exports = { apps };
