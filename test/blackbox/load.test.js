'use strict';
/*
 * load.test.js — short, bounded storm-load runs against a real `storm serve`
 * (issue 5): fanouts and rooms (durable and broadcast, one and several
 * worker processes) where every sent message must reach every member
 * (counts, not times), holds where every connection must come up, the same
 * runs against the benchmark peers (bench/peers/, --peer), the HTML and
 * --server-pid parts of the report, a worker that dies. The
 * storm-load binary sits next to STORM_BIN (build/storm-load, or
 * build/asan/storm-load with STORM_BIN=build/asan/storm). Also checks the
 * loopback-only refusal and the connection cap.
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ROOT, serverFixture, STORM_BIN, sanitizerReport } = require('./helpers');

const LOAD_BIN = path.join(path.dirname(STORM_BIN), 'storm-load');
const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000'];
const NO_WS_LIMIT = ['--ws-send-rate', '100000', '--ws-send-burst', '100000'];

const fx = serverFixture([...FAST, ...NO_WS_LIMIT]);
before(fx.start);
afterEach(fx.check);
after(fx.finish);

/* Runs storm-load to completion; resolves {code, stdout, stderr, report, html}.
 * onSpawn(proc) sees the child process (to kill a worker). */
function runLoad(args, timeoutMs = 90000, { html = false, onSpawn } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-load-'));
  const reportPath = path.join(dir, 'report.json');
  const htmlPath = path.join(dir, 'report.html');
  const extra = html ? ['--html', htmlPath] : [];
  return new Promise((resolve, reject) => {
    const p = spawn(LOAD_BIN, [...args, '--report', reportPath, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (onSpawn) onSpawn(p);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`storm-load ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${err}`));
    }, timeoutMs);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(t);
      let report = null;
      let htmlText = null;
      try {
        report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
        if (html) htmlText = fs.readFileSync(htmlPath, 'utf8');
      } catch {
        /* no report: the assertions say so */
      }
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, stdout: out, stderr: err, report, html: htmlText });
    });
  });
}

test('fanout: 200 members, 20 msgs/s for 2 s: every message reaches every member', async () => {
  const r = await runLoad(['fanout', '--url', `http://127.0.0.1:${fx.port}`, '--members', '200', '--rate', '20', '--duration', '2']);
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.scenario, 'fanout');
  assert.equal(j.members, 200);
  assert.equal(j.connected, 201);
  assert.equal(j.errors, 0, r.stderr);
  assert.equal(j.failed, 0);
  assert.equal(j.dropped, 0);
  assert.equal(j.sent, 40);
  assert.equal(j.acks, j.sent);
  assert.equal(j.deliveries_expected, j.sent * 200);
  assert.equal(j.deliveries, j.sent * 200);
  assert.equal(j.delivery_ms.count, j.deliveries);
  assert.ok(j.delivery_ms.p50 > 0 && j.delivery_ms.p50 <= j.delivery_ms.p99 && j.delivery_ms.p99 <= j.delivery_ms.max);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /deliveries \d+ \(\d+\/s\)/, 'a progress line every second');
});

test('hold: 300 connections all come up and stay', async () => {
  const r = await runLoad(['hold', '--url', `http://127.0.0.1:${fx.port}`, '--conns', '300', '--rate', '1000', '--duration', '1',
    '--token', fx.srv.token]);
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  assert.equal(r.report.scenario, 'hold');
  assert.equal(r.report.connected, 300, r.stderr);
  assert.equal(r.report.failed, 0);
  assert.equal(r.report.dropped, 0);
  assert.equal(r.report.connect_ms.count, 300);
  assert.equal(r.code, 0, r.stderr);
});

test('hold with a bad token: every connection fails with 401, reported', async () => {
  const r = await runLoad(['hold', '--url', `http://127.0.0.1:${fx.port}`, '--conns', '5', '--rate', '100', '--duration', '0',
    '--token', 'not.a.token']);
  assert.ok(r.report, r.stderr);
  assert.equal(r.report.connected, 0);
  assert.equal(r.report.failed, 5);
  assert.equal(r.report.close_codes['-401'], 5, JSON.stringify(r.report.close_codes));
  assert.equal(r.code, 1);
});

test('refuses non-loopback targets and unbounded runs', async () => {
  let r = await runLoad(['hold', '--url', 'http://10.1.2.3:80', '--conns', '1', '--rate', '1', '--duration', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /non-loopback/);
  r = await runLoad(['hold', '--url', 'http://localhost:80', '--conns', '1', '--rate', '1', '--duration', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /loopback only/);
  r = await runLoad(['hold', '--url', `http://127.0.0.1:${fx.port}`, '--conns', '19001', '--rate', '1', '--duration', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --conns/);
  r = await runLoad(['fanout', '--url', `http://127.0.0.1:${fx.port}`, '--members', '1', '--rate', '1', '--duration', '3601']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --duration/);
});

/* Every message of a clean run reached every member: counts, not times. */
function assertAllDelivered(r, members) {
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.errors, 0, r.stderr);
  assert.equal(j.failed, 0, r.stderr);
  assert.equal(j.dropped, 0, r.stderr);
  assert.equal(j.connected, j.connections);
  assert.ok(j.sent > 0);
  assert.equal(j.acks, j.sent, 'every send acked (durable) or echoed to its sender (broadcast)');
  assert.equal(j.deliveries_expected, j.sent * members);
  assert.equal(j.deliveries, j.deliveries_expected, r.stderr);
  assert.equal(j.delivery_ms.count, j.deliveries);
  /* The series adds up to the totals. */
  const sum = (k) => j.series.reduce((a, p) => a + p[k], 0);
  assert.equal(sum('sends'), j.sent);
  assert.equal(sum('deliveries'), j.deliveries);
  assert.equal(r.code, 0, r.stderr);
}

test('fanout --mode broadcast: 150 members, 20 msgs/s for 2 s, the sender gets its own copy', async () => {
  const r = await runLoad(['fanout', '--url', `http://127.0.0.1:${fx.port}`, '--members', '150', '--rate', '20',
    '--duration', '2', '--mode', 'broadcast']);
  assertAllDelivered(r, 150);
  assert.equal(r.report.mode, 'broadcast');
  assert.equal(r.report.sent, 40);
  assert.equal(r.report.ack_ms.count, 40);
});

test('fanout over 2 worker processes: members spread, deliveries counted in both', async () => {
  const r = await runLoad(['fanout', '--url', `http://127.0.0.1:${fx.port}`, '--members', '200', '--rate', '10',
    '--duration', '2', '--procs', '2']);
  assertAllDelivered(r, 200);
  assert.equal(r.report.procs, 2);
  assert.equal(r.report.sent, 20);
});

test('rooms durable, fixed rate, 2 processes: 6 rooms of 20, every room delivers', async () => {
  const r = await runLoad(['rooms', '--url', `http://127.0.0.1:${fx.port}`, '--rooms', '6', '--room-size', '20',
    '--rate', '5', '--duration', '2', '--procs', '2']);
  assertAllDelivered(r, 19);
  const j = r.report;
  assert.equal(j.scenario, 'rooms');
  assert.equal(j.rooms, 6);
  assert.equal(j.room_size, 20);
  assert.equal(j.connections, 120);
  assert.equal(j.sent, 6 * 5 * 2);
  assert.equal(j.steps.length, 1);
  assert.equal(j.steps[0].lost, 0);
  assert.equal(j.steps[0].deliveries, j.deliveries);
});

test('rooms broadcast ramp: 3 steps, per-step counts and the best step', async () => {
  const r = await runLoad(['rooms', '--url', `http://127.0.0.1:${fx.port}`, '--rooms', '4', '--room-size', '25',
    '--mode', 'broadcast', '--rate-start', '5', '--rate-step', '5', '--rate-max', '15', '--step-seconds', '1',
    '--p99-target-ms', '1000']);
  assertAllDelivered(r, 24);
  const j = r.report;
  assert.deepEqual(j.steps.map((s) => s.rate_per_room), [5, 10, 15]);
  assert.deepEqual(j.steps.map((s) => s.sent), [20, 40, 60]);
  for (const s of j.steps) {
    assert.equal(s.lost, 0);
    assert.equal(s.deliveries, s.sent * 24);
    assert.equal(s.offered_deliveries_per_s, s.sent * 24);
    assert.ok(s.delivery_ms.p99 <= s.delivery_ms.max);
  }
  /* Loopback at these rates stays far under 1 s: every step passes, the last is the best. */
  assert.deepEqual(j.steps.map((s) => s.ok), [true, true, true]);
  assert.equal(j.best_step.step, 2);
  assert.equal(j.best_step.rate_per_room, 15);
});

test('hold over 2 processes with --server-pid and --html', async () => {
  const r = await runLoad(['hold', '--url', `http://127.0.0.1:${fx.port}`, '--conns', '400', '--rate', '2000',
    '--duration', '1', '--token', fx.srv.token, '--procs', '2', '--server-pid', String(fx.srv.proc.pid)], 90000,
  { html: true });
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.connected, 400, r.stderr);
  assert.equal(j.procs, 2);
  assert.equal(j.server_stats_ok, true);
  assert.deepEqual(j.server_pids, [fx.srv.proc.pid]);
  assert.ok(j.server_cpu_s >= 0);
  assert.ok(j.server_rss_kb_end > 0 && j.server_rss_kb_baseline > 0);
  assert.equal(typeof j.server_rss_bytes_per_conn, 'number');
  assert.ok(Math.max(...j.series.map((p) => p.conns)) === 400, JSON.stringify(j.series));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.html, 'an HTML report');
  assert.match(r.html, /<svg/);
  assert.match(r.html, /Connections open/);
  assert.match(r.html, /<th>connected<\/th><td>400<\/td>/);
  assert.doesNotMatch(r.html, /https?:\/\//, 'no external resource');
});

test('a worker that dies fails the run with a clear message', async () => {
  let child = null;
  const done = runLoad(['hold', '--url', `http://127.0.0.1:${fx.port}`, '--conns', '40', '--rate', '1000',
    '--duration', '20', '--token', fx.srv.token, '--procs', '2'], 60000, { onSpawn: (p) => (child = p) });
  /* Wait for the run phase, then kill one worker (a child of storm-load). */
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const deadline = Date.now() + 20000;
  while (!/\] run /.test(err) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  const kids = require('node:child_process').execFileSync('pgrep', ['-P', String(child.pid)]).toString().trim().split('\n');
  assert.equal(kids.length, 2, `two workers: ${kids}`);
  process.kill(Number(kids[1]), 'SIGKILL');
  const r = await done;
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /worker 1 died before reporting: .*killed by signal 9.*the run failed/);
  assert.equal(r.report, null, 'no report from a failed run');
});

test('bounds: connections per process and per run, ramps and modes', async () => {
  const url = `http://127.0.0.1:${fx.port}`;
  let r = await runLoad(['hold', '--url', url, '--conns', '20000', '--rate', '1', '--duration', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --conns: 20000 connections need --procs 2/);
  r = await runLoad(['hold', '--url', url, '--conns', '100001', '--rate', '1', '--duration', '1', '--procs', '16']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --conns/);
  r = await runLoad(['hold', '--url', url, '--conns', '10', '--rate', '1', '--duration', '1', '--procs', '17']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --procs/);
  r = await runLoad(['rooms', '--url', url, '--rooms', '500', '--room-size', '201', '--rate', '1', '--duration', '1', '--procs', '16']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /at most 100000 connections per run/);
  r = await runLoad(['rooms', '--url', url, '--rooms', '2', '--room-size', '2']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /either --rate/);
  r = await runLoad(['rooms', '--url', url, '--rooms', '2', '--room-size', '2', '--rate-start', '1', '--rate-step', '0.01',
    '--rate-max', '100', '--step-seconds', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /rate plan is out of bounds/);
  r = await runLoad(['fanout', '--url', url, '--members', '2', '--rate', '1', '--duration', '1', '--mode', 'fast']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --mode/);
  r = await runLoad(['hold', '--url', url, '--conns', '2', '--rate', '1', '--duration', '1', '--mode', 'broadcast']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option --mode for hold/);
});

/* ---- against the benchmark peers (bench/peers/README.md) ---- */

const PEERS = [
  { name: 'node-ws-room', cmd: process.execPath, script: 'bench/peers/node-ws-room.js' },
  { name: 'bun-room', cmd: path.join(ROOT, 'node_modules', '.bin', 'bun'), script: 'bench/peers/bun-room.js' },
];

async function startPeer(peer) {
  if (!fs.existsSync(peer.cmd)) throw new Error(`${peer.cmd} is missing: run npm ci`);
  const proc = spawn(peer.cmd, [path.join(ROOT, peer.script), '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${peer.name} did not start: ${err}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`${peer.name} exited ${code}: ${err}`)));
  });
  return { proc, port };
}

for (const peer of PEERS) {
  test(`--peer against ${peer.name}: fanout and rooms deliver everything`, async () => {
    const p = await startPeer(peer);
    try {
      const url = `http://127.0.0.1:${p.port}`;
      let r = await runLoad(['fanout', '--url', url, '--peer', '--members', '100', '--rate', '20', '--duration', '1']);
      assertAllDelivered(r, 100);
      assert.equal(r.report.peer, true);
      assert.equal(r.report.mode, 'broadcast');
      r = await runLoad(['rooms', '--url', url, '--peer', '--rooms', '5', '--room-size', '10', '--rate', '10',
        '--duration', '1', '--procs', '2', '--server-pid', String(p.proc.pid)]);
      assertAllDelivered(r, 9);
      assert.equal(r.report.sent, 50);
      assert.equal(r.report.server_stats_ok, true);
      assert.ok(r.report.server_cpu_per_million_deliveries_s >= 0);
    } finally {
      p.proc.kill('SIGTERM');
    }
  });
}

/* ---- the k6 mirrors (tests/k6/auth.js, tests/k6/gateway-ws.js) ---- */

test('auth: 4 VUs x 10 iterations of register, login, refresh, logout; thresholds hold', async () => {
  const r = await runLoad(['auth', '--url', `http://127.0.0.1:${fx.port}`, '--vus', '4', '--iterations', '40',
    '--think-ms', '0']);
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.scenario, 'auth');
  assert.equal(j.iterations, 40);
  assert.equal(j.iterations_ok, 40, r.stderr);
  assert.equal(j.requests, 160);
  assert.equal(j.failed_requests, 0, r.stderr);
  for (const ep of ['register', 'login', 'refresh', 'logout']) {
    assert.equal(j.endpoints[ep].count, 40);
    assert.equal(j.endpoints[ep].failed, 0);
  }
  assert.equal(j.http_req_ms.count, 160);
  assert.equal(j.thresholds.error_rate.ok, true);
  assert.equal(j.thresholds.http_req_p95_ms.ok, true);
  assert.equal(j.thresholds.http_req_p95_ms.value, j.http_req_ms.p95);
  assert.equal(r.code, 0, r.stderr);
});

test('auth against a server that refuses: the error-rate threshold fails the run', async () => {
  /* Nothing listens on port 1: every request fails. */
  const r = await runLoad(['auth', '--url', 'http://127.0.0.1:1', '--vus', '2', '--iterations', '4', '--think-ms', '0']);
  assert.ok(r.report, r.stderr);
  assert.equal(r.report.failed_requests, r.report.requests);
  assert.equal(r.report.thresholds.error_rate.ok, false);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /thresholds violated/);
});

test('ws: 10 VUs x 3 iterations: join, connect, 5 sends, 5 acks each', async () => {
  const r = await runLoad(['ws', '--url', `http://127.0.0.1:${fx.port}`, '--vus', '10', '--iterations', '30'], 90000,
    { html: true });
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.scenario, 'ws');
  assert.equal(j.iterations, 30);
  assert.equal(j.errors, 0, r.stderr);
  assert.equal(j.sent, 150);
  assert.equal(j.acks, 150, 'every message acked');
  assert.deepEqual(j.checks, { join_200: { passes: 30, fails: 0 }, upgrade_101: { passes: 30, fails: 0 },
    acks_5: { passes: 30, fails: 0 } });
  assert.equal(j.checks_rate, 1);
  assert.equal(j.ws_connecting_ms.count, 30);
  assert.equal(j.ack_ms.count, 150);
  assert.equal(j.thresholds.ws_connecting_p95_ms.ok, true);
  assert.match(r.html, /<th>checks_rate<\/th><td>1.000<\/td>/);
  assert.equal(r.code, 0, r.stderr);
});
