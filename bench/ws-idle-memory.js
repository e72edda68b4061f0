// Benchmark (not a test): server RSS per idle WebSocket connection.
// Starts build/release/storm, opens N authenticated WebSocket connections with a minimal
// raw-socket client (handshake + read the hello, then stay idle), and
// reports (RSS after - RSS before) / N from /proc/PID/status.
//   usage: node bench/ws-idle-memory.js [N=10000]
'use strict';
const { spawn, execSync, execFileSync } = require('node:child_process');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const N = Number(process.argv[2] || 10000);
const bin = process.env.STORM_BIN || path.join(__dirname, '..', 'build/release/storm');
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (!process.env.STORM_BIN) execSync('make -s BUILD=release', { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-mem-'));
  const env = { ...process.env, STORM_JWT_SECRET: 'bench-only-secret-0123456789abcdef0123456789' };
  // Authenticated connections, as in production: one user, one token for all.
  execFileSync(bin, ['user', 'create', 'memuser', '--data', data, '--log-level', 'warn'], { env, input: 'mem-password\n' });
  const token = execFileSync(bin, ['token', '--user', 'memuser', '--ttl', '3600', '--data', data, '--log-level', 'warn'], { env }).toString().trim();
  const srv = spawn(bin, ['serve', '--port', '0', '--data', data, '--log-level', 'info'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let acc = '';
    srv.stderr.on('data', (d) => { acc += d; const m = /listening on [^:]+:(\d+)/.exec(acc); if (m) resolve(Number(m[1])); });
    srv.on('exit', (c) => reject(new Error('storm exited ' + c)));
  });
  // Warm up allocator pools with a first batch, then measure a second.
  const socks = [];
  const open = (i, token) => new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 200)}` });
    const key = crypto.randomBytes(16).toString('base64');
    let got = '';
    s.on('error', reject);
    s.on('connect', () => s.write(`GET /ws?access_token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    s.on('data', (d) => { got += d.toString('latin1'); if (got.includes('"hello"')) { s.removeAllListeners('data'); s.on('data', () => {}); resolve(); } });
    socks.push(s);
  });
  const batch = async (from, to) => { for (let i = from; i < to; i += 500) { const ps = []; for (let j = i; j < Math.min(to, i + 500); j++) ps.push(open(j, token)); await Promise.all(ps); } };
  const warm = Math.min(1000, N);
  await batch(0, warm);
  await sleep(500);
  const before = rss(srv.pid);
  await batch(warm, warm + N);
  await sleep(1000);
  const after = rss(srv.pid);
  console.log(`connections measured: ${N} (after ${warm} warm-up connections)`);
  console.log(`server RSS before: ${(before / 1048576).toFixed(1)} MiB, after: ${(after / 1048576).toFixed(1)} MiB`);
  console.log(`bytes per idle WebSocket connection: ${Math.round((after - before) / N)}`);
  for (const s of socks) s.destroy();
  srv.kill('SIGTERM');
}
main().catch((e) => { console.error(e); process.exit(1); });
