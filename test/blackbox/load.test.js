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

/* Scattered nonces must stay distinct: a repeated one would be answered as
 * a duplicate and fanned out to nobody, and the counts would fall short. */
test('rooms durable --nonces random: 4 rooms of 5 at 20 msgs/s for 2 s, every message stored and delivered', async () => {
  const r = await runLoad(['rooms', '--url', `http://127.0.0.1:${fx.port}`, '--rooms', '4', '--room-size', '5',
    '--rate', '20', '--duration', '2', '--nonces', 'random']);
  assertAllDelivered(r, 4);
  assert.equal(r.report.sent, 4 * 20 * 2);
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

/* ---- the k6 mirrors (tests/k6/auth.js, gateway-ws.js, media-upload.js) ---- */

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

/* Committed media objects under the server's data directory (docs/media.md:
 * media/objects/<id[0:2]>/<id>). */
function mediaObjects(dataDir) {
  const root = path.join(dataDir, 'media', 'objects');
  if (!fs.existsSync(root)) return 0;
  return fs.readdirSync(root).reduce((n, d) => n + fs.readdirSync(path.join(root, d)).length, 0);
}

test('media: 4 VUs x 6 iterations: every 1x1 PNG upload answered 201 image/png and stored', async () => {
  const before = mediaObjects(fx.srv.dataDir);
  const r = await runLoad(['media', '--url', `http://127.0.0.1:${fx.port}`, '--vus', '4', '--iterations', '24'], 90000,
    { html: true });
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.scenario, 'media');
  assert.equal(j.vus, 4);
  assert.equal(j.iterations, 24);
  assert.equal(j.requests, 24);
  assert.equal(j.uploads_ok, 24, r.stderr);
  assert.equal(j.failed_requests, 0, r.stderr);
  assert.deepEqual(j.status_codes, { 201: 24 }, 'every upload answered 201');
  assert.equal(j.mime_mismatch, 0);
  assert.equal(j.vus_without_token, 0);
  assert.equal(j.png_bytes, 70);
  assert.equal(j.error_rate, 0);
  assert.equal(j.http_req_ms.count, 24);
  assert.ok(j.http_req_ms.p50 > 0 && j.http_req_ms.p50 <= j.http_req_ms.p95 && j.http_req_ms.p95 <= j.http_req_ms.max);
  assert.deepEqual(j.thresholds.http_req_p95_ms, { limit: 2000, value: j.http_req_ms.p95, ok: true });
  assert.deepEqual(j.thresholds.error_rate, { limit: 0.05, value: 0, ok: true });
  assert.equal(mediaObjects(fx.srv.dataDir) - before, 24, 'one stored object per upload');
  assert.match(r.html, /<h1>storm-load: media<\/h1>/);
  assert.match(r.html, /<th>uploads_ok<\/th><td>24<\/td>/);
  assert.match(r.html, /error_rate: \{limit: 0\.050, value: 0\.000, ok: true\}/, 'thresholds in the HTML');
  assert.equal(r.code, 0, r.stderr);
});

test('media against a server that refuses: no VU logs in, the error-rate threshold fails the run', async () => {
  /* Nothing listens on port 1. */
  const r = await runLoad(['media', '--url', 'http://127.0.0.1:1', '--vus', '2', '--iterations', '4']);
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, r.stderr);
  assert.equal(r.report.vus_without_token, 2);
  assert.equal(r.report.requests, 0);
  assert.equal(r.report.uploads_ok, 0);
  assert.equal(r.report.failed_requests, r.report.iterations);
  assert.equal(r.report.thresholds.error_rate.ok, false);
  assert.equal(r.report.thresholds.http_req_p95_ms.ok, false, 'no upload measured: no p95 to pass');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /thresholds violated/);
});

/* ---- chat and storm-day (issue 5) ---- */

test('chat: 36 users in channels of 36, 12 and 4 plus DMs, 2 s: every acked message reaches every other member', async () => {
  const r = await runLoad(['chat', '--url', `http://127.0.0.1:${fx.port}`, '--users', '36', '--rate', '3',
    '--duration', '2', '--channels', '1x*,3x12,9x4', '--dms', '18', '--procs', '2'], 90000, { html: true });
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.scenario, 'chat');
  assert.equal(j.users, 36);
  assert.equal(j.channels, 13);
  assert.equal(j.dms, 18);
  assert.deepEqual(j.channel_classes, [{ count: 1, size: 36 }, { count: 3, size: 12 }, { count: 9, size: 4 }]);
  assert.equal(j.connected, 36);
  assert.equal(j.errors, 0, r.stderr);
  assert.equal(j.failed, 0);
  assert.equal(j.dropped, 0);
  /* About 36 x 3 x 2 = 216 actions; every kind happened (weights 50/30/10/10). */
  const acts = j.actions;
  assert.ok(acts.send > 0 && acts.typing > 0 && acts.history > 0 && acts.read > 0, JSON.stringify(acts));
  assert.equal(j.sent, acts.send);
  assert.equal(j.acks, j.sent);
  /* Each ack calls for (conversation size - 1) deliveries: at least 1 (a DM), at most 35. */
  assert.ok(j.deliveries_expected >= j.sent && j.deliveries_expected <= j.sent * 35, JSON.stringify(j));
  assert.equal(j.deliveries, j.deliveries_expected, r.stderr);
  assert.equal(j.delivery_ms.count, j.deliveries);
  assert.equal(j.history_answered, j.history_sent);
  assert.equal(j.history_ms.count, j.history_sent);
  assert.equal(j.read_answered, j.read_sent);
  assert.equal(j.read_ms.count, j.read_sent);
  assert.equal(j.typing_sent, acts.typing);
  assert.ok(j.typing_received > 0);
  const sum = (k) => j.series.reduce((a, p) => a + p[k], 0);
  assert.equal(sum('sends'), j.sent);
  assert.equal(sum('deliveries'), j.deliveries);
  assert.match(r.html, /<th>history_ms<\/th>/);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /typing \d+ history \d+\/\d+ read \d+\/\d+/, 'the progress line shows the actions');
});

test('chat refuses a bad mix with a clear message', async () => {
  const url = `http://127.0.0.1:${fx.port}`;
  let r = await runLoad(['chat', '--url', url, '--users', '10', '--rate', '1', '--duration', '1', '--channels', '1x20']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --channels: channel class 1: SIZE must be 2\.\.10/);
  r = await runLoad(['chat', '--url', url, '--users', '10', '--rate', '1', '--duration', '1', '--weights', 'send=0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad value for --weights: weights: all 0/);
});

test('storm-day with plans/smoke.json over 3 processes: every phase reached, every acked message delivered', async () => {
  const plan = path.join(ROOT, 'tools', 'load', 'plans', 'smoke.json');
  const spec = JSON.parse(fs.readFileSync(plan, 'utf8'));
  const r = await runLoad(['storm-day', '--url', `http://127.0.0.1:${fx.port}`, '--plan', plan, '--room-users', '2',
    '--devices', '10', '--procs', '3'], 90000, { html: true });
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
  assert.ok(r.report, `no report; exit ${r.code}, stderr:\n${r.stderr}`);
  const j = r.report;
  assert.equal(j.scenario, 'storm-day');
  assert.equal(j.room_size, 20);
  const max = Math.max(...spec.phases.map((p) => p.conns));
  assert.equal(j.connections, max);
  assert.equal(j.rooms, Math.ceil(max / 20));
  assert.equal(j.accounts, j.rooms * 2);
  assert.equal(j.errors, 0, r.stderr);
  assert.equal(j.failed, 0, r.stderr);
  assert.equal(j.dropped, 0, r.stderr);
  assert.ok(j.sent > 0);
  assert.equal(j.acks, j.sent);
  assert.equal(j.deliveries_expected, j.acks * 19);
  assert.equal(j.deliveries, j.deliveries_expected, r.stderr);
  assert.equal(j.phases.length, spec.phases.length);
  let sent = 0;
  for (const [i, p] of j.phases.entries()) {
    assert.equal(p.name, spec.phases[i].name);
    assert.equal(p.target_conns, spec.phases[i].conns);
    assert.equal(p.lost, 0, JSON.stringify(p));
    assert.equal(p.errors, 0);
    assert.deepEqual(p.close_codes, {});
    assert.equal(p.deliveries, p.acks * 19);
    assert.equal(p.sent + p.skipped, p.planned, JSON.stringify(p));
    sent += p.sent;
  }
  assert.equal(sent, j.sent);
  /* The ramps opened connections phase by phase and the peak phase reached its target. */
  const peak = j.phases.find((p) => p.target_conns === max);
  assert.equal(peak.conns_peak, max, JSON.stringify(j.phases));
  assert.ok(j.phases[0].opened > 0 && j.phases[0].connect_ms.count === j.phases[0].opened);
  /* The cool-down closed connections down to its target (closes on purpose are not errors). */
  const last = j.phases[j.phases.length - 1];
  assert.equal(last.conns_reached, last.target_conns, JSON.stringify(last));
  /* Messages flowed in the phases after the warm-up (rooms were live). */
  for (const p of j.phases.slice(1)) assert.ok(p.sent > 0, JSON.stringify(p));
  assert.ok(Math.max(...j.series.map((p) => p.conns)) === max);
  assert.match(r.html, /<h2>Phases<\/h2>/);
  assert.match(r.stderr, /phase "spike" target/);
  assert.equal(r.code, 0, r.stderr);
});

test('storm-day refuses bad plans and too few processes', async () => {
  const url = `http://127.0.0.1:${fx.port}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-day-'));
  try {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ phases: [{ name: 'x', duration_s: 1, conns: 10 }] }));
    let r = await runLoad(['storm-day', '--url', url, '--plan', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad plan .*bad\.json: phase 1: missing "msgs_per_s"/);
    fs.writeFileSync(bad, ' '.repeat(70000));
    r = await runLoad(['storm-day', '--url', url, '--plan', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /more than 65536/);
    r = await runLoad(['storm-day', '--url', url, '--plan', path.join(ROOT, 'tools', 'load', 'plans', 'storm-day.json')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /100000 connections in rooms of 100 need --procs 6 or more/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
