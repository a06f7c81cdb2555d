// A stand-in Smart-Trade app: on start it writes one key to Redis through REDIS_URL, then idles.
// Plain `net` and RESP so that the test needs nothing from the npm registry but PM2 itself.
const net = require('net');

const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0');
const command = (...args) =>
  `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');

const socket = net.connect(Number(url.port || 6379), url.hostname, () => {
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
