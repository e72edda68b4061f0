'use strict';
/*
 * load.test.js — short, bounded storm-load runs against a real `storm serve`
 * (issue 5): a fanout where every sent message must reach every member
 * (counts, not times) and a hold where every connection must come up. The
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
const { serverFixture, STORM_BIN, sanitizerReport } = require('./helpers');

const LOAD_BIN = path.join(path.dirname(STORM_BIN), 'storm-load');
const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000'];
const NO_WS_LIMIT = ['--ws-send-rate', '100000', '--ws-send-burst', '100000'];

const fx = serverFixture([...FAST, ...NO_WS_LIMIT]);
before(fx.start);
afterEach(fx.check);
after(fx.finish);

/* Runs storm-load to completion; resolves {code, stdout, stderr, report}. */
function runLoad(args, timeoutMs = 90000) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-load-'));
  const reportPath = path.join(dir, 'report.json');
  return new Promise((resolve, reject) => {
    const p = spawn(LOAD_BIN, [...args, '--report', reportPath], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      try {
        report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
      } catch {
        /* no report: the assertions say so */
      }
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, stdout: out, stderr: err, report });
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
