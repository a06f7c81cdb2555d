/*
 * Smart-Trade ecosystem
 * apps: [ { name: 'ghost' } ]
 */
module.exports = {
  /* the apps */ apps: [
    {
      name: 'api', /* main */
      script: 'server.js',
      env: {
        NODE_ENV: 'production' /* prod */
      }
    }
  ]
};
