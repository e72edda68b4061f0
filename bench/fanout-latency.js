// Benchmark (not a test), issue 4: send-to-delivery latency in one channel.
// M members (distinct users) each hold one WebSocket; one more user sends R
// messages/s over its WebSocket for D seconds. Every receiver records
// (receive time - send time carried in the body); the sender records ack
// latency (send -> ack: the message is durable). Prints p50/p99 of both and
// the delivery rate. Same machine for client and server (2 cores shared).
//   usage: node bench/fanout-latency.js [members=1000] [rate=50] [seconds=10]
'use strict';
const { spawn, execSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const WebSocket = require('ws');

const M = Number(process.argv[2] || 1000);
const RATE = Number(process.argv[3] || 50);
const SECS = Number(process.argv[4] || 10);
const ROOT = path.join(__dirname, '..');
const bin = process.env.STORM_BIN || path.join(ROOT, 'build/release/storm');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const pct = (xs, p) => { const s = Float64Array.from(xs).sort(); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };

function req(port, method, p, body, token) {
  return new Promise((resolve, reject) => {
    const data = body ? JSON.stringify(body) : '';
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    if (token) headers.authorization = `Bearer ${token}`;
    const r = http.request({ host: '127.0.0.1', port, path: p, method, agent, headers }, (res) => {
      let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => resolve({ status: res.statusCode, body: b ? JSON.parse(b) : null }));
    });
    r.on('error', reject); r.end(data);
  });
}

async function user(port, name) {
  const r = await req(port, 'POST', '/auth/register', { username: name, password: 'bench-password' });
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  const l = await req(port, 'POST', '/auth/login', { username: name, password: 'bench-password' });
  return l.body.access_token;
}

function connect(port, token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?access_token=${token}`);
    ws.once('message', () => resolve(ws)); // hello
    ws.once('error', reject);
  });
}

async function main() {
  if (!process.env.STORM_BIN) execSync('make -s BUILD=release', { cwd: ROOT, stdio: 'inherit' });
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-fanout-'));
  const env = { ...process.env, STORM_JWT_SECRET: 'bench-only-secret-0123456789abcdef0123456789' };
  const srv = spawn(bin, ['serve', '--port', '0', '--data', data, '--log-level', 'info',
    '--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000',
    '--ws-send-rate', '100000', '--ws-send-burst', '100000'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let acc = ''; srv.stderr.on('data', (d) => { acc += d; const m = /listening on [^:]+:(\d+)/.exec(acc); if (m) resolve(Number(m[1])); });
    srv.on('exit', (c) => reject(new Error('storm exited ' + c)));
  });
  try {
    const senderTok = await user(port, 'sender');
    const ch = await req(port, 'POST', '/channels', { name: 'fanout' }, senderTok);
    if (ch.status !== 201) throw new Error('create channel ' + ch.status + JSON.stringify(ch.body));
    const chanId = ch.body.channel.id;
    const toks = [];
    for (let i = 0; i < M; i += 50) {
      toks.push(...await Promise.all(Array.from({ length: Math.min(50, M - i) }, (_, j) => user(port, `member${i + j}`))));
    }
    for (let i = 0; i < M; i += 50) {
      await Promise.all(toks.slice(i, i + 50).map((t) => req(port, 'POST', `/channels/${chanId}/join`, null, t)));
    }
    const socks = [];
    for (let i = 0; i < M; i += 100) socks.push(...await Promise.all(toks.slice(i, i + 100).map((t) => connect(port, t))));
    const lat = [];
    let deliveries = 0;
    for (const ws of socks) {
      ws.on('message', (d) => {
        const s = d.toString();
        if (!s.startsWith('{"op":"message"')) return;
        const m = /"body":"t=(\d+)"/.exec(s);
        if (m) { lat.push(Date.now() - Number(m[1])); deliveries++; }
      });
    }
    const sender = await connect(port, senderTok);
    const acks = [];
    const pending = new Map();
    sender.on('message', (d) => {
      const j = JSON.parse(d);
      if (j.op === 'ack' && pending.has(j.nonce)) { acks.push(Number(process.hrtime.bigint() - pending.get(j.nonce)) / 1e6); pending.delete(j.nonce); }
    });
    await sleep(500);
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < SECS * 1000) {
      const nonce = `n${n++}`;
      pending.set(nonce, process.hrtime.bigint());
      sender.send(JSON.stringify({ op: 'send', channel_id: chanId, body: `t=${Date.now()}`, nonce }));
      await sleep(1000 / RATE);
    }
    await sleep(2000);
    console.log(`members ${M}, ${RATE} msgs/s for ${SECS}s (${n} sent, ${acks.length} acked) -> offered ${M * RATE} deliveries/s`);
    console.log(`deliveries received: ${deliveries} (expected ${n * M}), ${(deliveries / SECS).toFixed(0)}/s over the sending window`);
    console.log(`send->delivery latency: p50 ${pct(lat, 50)} ms  p99 ${pct(lat, 99)} ms  (ms clock)`);
    console.log(`send->ack (durable) latency: p50 ${pct(acks, 50).toFixed(2)} ms  p99 ${pct(acks, 99).toFixed(2)} ms`);
    for (const ws of socks) ws.terminate();
    sender.terminate();
  } finally {
    srv.kill('SIGTERM');
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
