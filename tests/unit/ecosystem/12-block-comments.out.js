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
        NODE_ENV: 'production', /* prod */
        REDIS_URL: 'redis://app:s3cret@127.0.0.1:6379/0'
      }
    }
  ]
};
