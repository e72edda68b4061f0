// Benchmark (not a test), issue 3: does password hashing stall real-time delivery?
//  1. logins/s: closed-loop logins (8 in flight) for D seconds with the default
//     argon2id parameters (m=19 MiB, t=2) and --hash-concurrency 1 (one core hashes).
//  2. WebSocket round trip ({"op":"ping"} -> "pong") p50/p99 over 1,000 connected
//     clients, in quiet windows alternating with windows during which a second
//     process sends RATE logins/s (windows of ~5 s, SECONDS in all per side).
// Prints the numbers and the storm/quiet p99 ratio (target <= 2).
//   usage: node bench/login-storm.js [clients=1000] [rate=50] [seconds=20]
'use strict';
const { spawn, execFileSync, execSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const WebSocket = require('ws');

const CLIENTS = Number(process.argv[2] || 1000);
const RATE = Number(process.argv[3] || 50);
const SECS = Number(process.argv[4] || 20);
const ROUNDS = Math.max(4, Math.round(SECS / 5)); // windows of ~5 s
const ROOT = path.join(__dirname, '..');
const bin = process.env.STORM_BIN || path.join(ROOT, 'build/release/storm');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(port, p, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.on('error', reject); req.end(data);
  });
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };

async function pingRound(socks, seconds) {
  // Each client pings once per second, spread evenly; collect RTTs in ms.
  const rtts = [];
  const end = Date.now() + seconds * 1000;
  await Promise.all(socks.map(async (ws, i) => {
    await sleep((i / socks.length) * 1000);
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      await new Promise((resolve) => { ws.once('message', () => resolve()); ws.send('{"op":"ping"}'); });
      rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await sleep(1000);
    }
  }));
  return rtts;
}

async function main() {
  if (!process.env.STORM_BIN) execSync('make -s BUILD=release', { cwd: ROOT, stdio: 'inherit' });
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-login-'));
  const env = { ...process.env, STORM_JWT_SECRET: 'bench-only-secret-0123456789abcdef0123456789' };
  const srv = spawn(bin, ['serve', '--port', '0', '--data', data, '--log-level', 'info', '--auth-rate', '100000', '--auth-burst', '100000',
    ...(process.env.BENCH_SERVER_ARGS || '').split(' ').filter(Boolean)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let acc = ''; srv.stderr.on('data', (d) => { acc += d; const m = /listening on [^:]+:(\d+)/.exec(acc); if (m) resolve(Number(m[1])); });
    srv.on('exit', (c) => reject(new Error('storm exited ' + c)));
    setTimeout(() => reject(new Error('no listening line: ' + acc)), 5000);
  });
  try {
    // Users for the storm.
    const USERS = 20;
    for (let i = 0; i < USERS; i++) {
      const r = await post(port, '/auth/register', { username: `bench${i}`, password: 'bench-password' });
      if (r.status !== 201) throw new Error('register ' + r.status + ' ' + r.body);
    }
    // 1. Throughput.
    let done = 0, fails = 0;
    const until = Date.now() + SECS * 1000;
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      while (Date.now() < until) {
        const r = await post(port, '/auth/login', { username: `bench${w}`, password: 'bench-password' });
        if (r.status === 200) done++; else fails++;
      }
    }));
    const lps = done / ((Date.now() - t0) / 1000);
    // 2. Round trips.
    const login = JSON.parse((await post(port, '/auth/login', { username: 'bench0', password: 'bench-password' })).body);
    const socks = [];
    for (let i = 0; i < CLIENTS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, CLIENTS - i) }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?access_token=${login.access_token}`);
        ws.once('message', () => { socks.push(ws); resolve(); }); // hello
        ws.once('error', reject);
      })));
    }
    // Quiet and storm windows alternate (ROUNDS of each, SECS/ROUNDS long):
    // this machine is shared, and background load that comes and goes
    // then falls on both sides instead of on one.
    // The storm comes from another process: logins allocate in the client
    // (HTTP, JSON), and the measuring process's own garbage collections
    // would otherwise show up as ping delays that the server never caused.
    // A third window per round is the control: the same rate of
    // GET /auth/me (HTTP, JWT, a users.get round trip; no hash), which
    // tells what the requests cost apart from hashing.
    const quiet = [], busy = [], control = [];
    let stormOk = 0, stormFail = 0;
    const withChild = async (mode, into) => {
      const child = spawn(process.execPath, [__filename, '--storm-child', String(port), String(RATE), String(USERS), mode, login.access_token],
        { stdio: ['ignore', 'pipe', 'inherit'] });
      let childOut = '';
      child.stdout.on('data', (d) => (childOut += d));
      await sleep(300); // the child's start-up is not part of the storm
      into.push(...await pingRound(socks, SECS / ROUNDS));
      child.kill('SIGTERM');
      await new Promise((res) => child.once('exit', res));
      return JSON.parse(childOut || '{"ok":0,"failed":1}');
    };
    for (let r = 0; r < ROUNDS; r++) {
      quiet.push(...await pingRound(socks, SECS / ROUNDS));
      const c = await withChild('login', busy);
      stormOk += c.ok; stormFail += c.failed;
      const m = await withChild('me', control);
      if (m.failed) throw new Error(`control requests failed: ${m.failed}`);
    }
    for (const ws of socks) ws.terminate();

    console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0].model}), server and client on the same machine`);
    console.log(`argon2id m=19 MiB t=2 p=1, --hash-concurrency 1 (unless overridden: ${process.env.BENCH_SERVER_ARGS || 'defaults'})`);
    console.log(`logins/s (closed loop, 8 in flight, ${SECS}s): ${lps.toFixed(1)}  (failures ${fails})`);
    console.log(`WS ping RTT, ${socks.length} clients x 1/s, quiet : p50 ${pct(quiet, 50).toFixed(2)} ms  p99 ${pct(quiet, 99).toFixed(2)} ms  (n=${quiet.length})`);
    console.log(`WS ping RTT, during ${RATE} logins/s           : p50 ${pct(busy, 50).toFixed(2)} ms  p99 ${pct(busy, 99).toFixed(2)} ms  (n=${busy.length}; logins ok ${stormOk}, failed ${stormFail})`);
    console.log(`WS ping RTT, during ${RATE} GET /auth/me/s (control): p50 ${pct(control, 50).toFixed(2)} ms  p99 ${pct(control, 99).toFixed(2)} ms  (n=${control.length})`);
    console.log(`p99 ratio storm/quiet: ${(pct(busy, 99) / pct(quiet, 99)).toFixed(2)}   storm/control: ${(pct(busy, 99) / pct(control, 99)).toFixed(2)}`);
  } finally {
    srv.kill('SIGTERM');
  }
}
function getMe(port, token) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/auth/me', method: 'GET', agent,
      headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume(); res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('error', reject); req.end();
  });
}

// Child: RATE logins/s (or GET /auth/me/s), open loop, until SIGTERM;
// prints {ok, failed}.
async function stormChild(port, rate, users, mode, token) {
  let ok = 0, failed = 0, stop = false;
  process.on('SIGTERM', () => { stop = true; });
  for (let i = 0; !stop; i++) {
    (mode === 'me' ? getMe(port, token)
      : post(port, '/auth/login', { username: `bench${i % users}`, password: 'bench-password' }))
      .then((r) => (r.status === 200 ? ok++ : failed++), () => failed++);
    await sleep(1000 / rate);
  }
  await sleep(1000); // let in-flight logins finish
  process.stdout.write(JSON.stringify({ ok, failed }));
  process.exit(0);
}

if (process.argv[2] === '--storm-child')
  stormChild(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), process.argv[6], process.argv[7]);
else
  main().catch((e) => { console.error(e); process.exit(1); });
