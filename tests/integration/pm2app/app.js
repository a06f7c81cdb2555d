// A stand-in Smart-Trade app: on start it writes one key to Redis through REDIS_URL, then idles.
// Plain `net`/`tls` and RESP so that the test needs nothing from the npm registry but PM2 itself.
// Like ioredis and node-redis, it takes rediss:// as TLS with Node's trusted CAs (to which
// NODE_EXTRA_CA_CERTS adds one) and checks that the certificate names the URL's host.
const net = require('net');
const tls = require('tls');

const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0');
const command = (...args) =>
  `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');

const secure = url.protocol === 'rediss:';
const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
const connect = secure
  ? (port, done) => tls.connect({ port, host, servername: net.isIP(host) ? undefined : host }, done)
  : (port, done) => net.connect(port, host, done);
const socket = connect(Number(url.port || 6379), () => {
  let out = '';
  if (url.username) out += command('AUTH', decodeURIComponent(url.username), decodeURIComponent(url.password));
  out += command('SET', `pm2-check:${process.env.name}`, `connected as ${url.username || 'default'}`, 'EX', '3600');
  socket.write(out);
});
socket.on('data', (reply) => {
  console.log(`redis replied: ${reply.toString().trim().replace(/\r\n/g, ' ')}`);
  socket.end();
});
socket.on('error', (err) => console.error(`redis error: ${err.message}`));
setInterval(() => {}, 1 << 30);
