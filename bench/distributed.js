// Benchmark (not a test), issue 6: the same load on one embedded process and
// on the local cluster (scripts/cluster.sh: 3 gateways on one port over a
// 3-node NATS cluster, 2 messages replicas on PostgreSQL), in one run, with
// the same client (build/release/storm-load).
//
//   F  cross-gateway fan-out: M members in one channel (spread over the 3
//      gateways by the kernel), one sender, durable messages at R msgs/s:
//      deliveries/s and send→delivery p50/p99, embedded vs cluster
//   P  durable messages/s into PostgreSQL (group commit): rooms of 2 in
//      durable mode, rate ramped; acked messages/s at ack p99 ≤ 50 ms
//
//   usage: node bench/distributed.js [--members 2000] [--rate 50] [--seconds 10]
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const REL = path.join(ROOT, 'build/release');
const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def; };
const M = opt('members', 2000), R = opt('rate', 50), SECS = opt('seconds', 10);
const SECRET = 'bench-only-secret-0123456789abcdef0123456789';
const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '1000000', '--auth-burst', '1000000',
  '--ws-send-rate', '100000', '--ws-send-burst', '100000', '--log-level', 'warn'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function load(url, pids, args) {
  const report = path.join(os.tmpdir(), `dist-${process.pid}-${Date.now()}.json`);
  const a = [...args, '--url', url, '--report', report];
  for (const p of pids) a.push('--server-pid', String(p));
  try {
    execFileSync(path.join(REL, 'storm-load'), a, { stdio: ['ignore', 'ignore', 'ignore'], timeout: 900000 });
  } catch (e) {
    if (!fs.existsSync(report)) throw new Error(`storm-load failed: exit ${e.status}`);
  }
  const r = JSON.parse(fs.readFileSync(report, 'utf8'));
  fs.unlinkSync(report);
  return r;
}

async function embedded(fn) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-dist-'));
  const proc = spawn(path.join(REL, 'storm'), ['serve', '--port', '0', '--data', data, ...FAST.filter((x, i, l) => !(x === '--log-level' || l[i - 1] === '--log-level'))],
    { env: { ...process.env, STORM_JWT_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let acc = '';
    proc.stderr.on('data', (d) => { acc += d; const m = /listening on [^:]+:(\d+)/.exec(acc); if (m) resolve(Number(m[1])); });
    proc.once('exit', () => reject(new Error(`storm exited: ${acc.slice(-400)}`)));
  });
  try { return await fn(`http://127.0.0.1:${port}`, [proc.pid]); } finally { proc.kill('SIGTERM'); await sleep(500); }
}

async function cluster(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-distcl-'));
  const env = { ...process.env, STORM_BIN: path.join(REL, 'storm'), STORM_CLUSTER_DIR: dir, STORM_CLUSTER_ARGS: FAST.join(' '), STORM_JWT_SECRET: SECRET };
  execFileSync(path.join(ROOT, 'scripts/cluster.sh'), ['up'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const e = fs.readFileSync(path.join(dir, 'env'), 'utf8');
    const port = /STORM_CLUSTER_GATEWAY_PORT=(\d+)/.exec(e)[1];
    const pids = fs.readFileSync(path.join(dir, 'procs'), 'utf8').trim().split('\n')
      .map((l) => Number(fs.readFileSync(path.join(dir, `${l.split(' ')[0]}.pid`), 'utf8')));
    return await fn(`http://127.0.0.1:${port}`, pids);
  } finally {
    execFileSync(path.join(ROOT, 'scripts/cluster.sh'), ['down'], { env, stdio: 'ignore' });
  }
}

const fanout = (url, pids) => load(url, pids, ['fanout', '--members', String(M), '--rate', String(R), '--duration', String(SECS), '--procs', '2', '--conn-rate', '3000', '--mode', 'durable']);
const pgRooms = (url, pids) => load(url, pids, ['rooms', '--mode', 'durable', '--rooms', '200', '--room-size', '2',
  '--rate-start', '10', '--rate-step', '20', '--rate-max', '200', '--step-seconds', '3', '--p99-target-ms', '50', '--procs', '2']);

async function main() {
  execFileSync('make', ['-s', 'BUILD=release', 'all'], { cwd: ROOT, stdio: 'inherit' });
  const rows = [];
  const e = await embedded(fanout);
  const c = await cluster(fanout);
  const f = (r) => [Math.round(r.deliveries_per_s), r.delivery_ms.p50, r.delivery_ms.p99, r.ack_ms.p99, r.deliveries_expected - r.deliveries, r.server_cpu_per_million_deliveries_s];
  rows.push(['embedded (1 process, SQLite)', ...f(e)]);
  rows.push(['cluster (3 gateways, NATS, 2 messages replicas, PostgreSQL)', ...f(c)]);
  console.log(`F: fan-out, ${M} members in one channel, ${R} durable msgs/s for ${SECS} s`);
  console.log('| topology | deliveries/s | delivery p50 ms | delivery p99 ms | ack p99 ms | lost | server CPU s / 1M deliveries (all processes) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log(`cluster/embedded: deliveries/s ${(rows[1][1] / rows[0][1]).toFixed(2)}×, p99 ${(rows[1][3] / rows[0][3]).toFixed(2)}×`);

  const p = await cluster(pgRooms);
  let best = null;
  for (const st of p.steps) {
    const ackRate = st.acks / st.duration_s;
    if (st.acks === st.sent && st.delivery_ms && st.delivery_ms.p99 <= 50 && (!best || ackRate > best.rate)) best = { rate: ackRate, p99: st.delivery_ms.p99, step: st.rate_per_room };
  }
  console.log('\nP: durable messages into PostgreSQL through the cluster (200 rooms × 2, ramp)');
  console.log(`best step: ${best ? Math.round(best.rate) : 0} acked msgs/s (${best ? best.step : '-'} msgs/s per room), delivery p99 ${best ? best.p99 : '-'} ms; whole-run ack p99 ${p.ack_ms.p99} ms`);
  console.log(`\n(${new Date().toISOString()}, ${os.cpus().length} cores ${os.cpus()[0].model})`);
}

main().catch((err) => { console.error(err); process.exit(1); });
