'use strict';
/*
 * lifecycle.test.js — the process around the server: graceful shutdown on
 * SIGTERM with live WebSockets, usage errors and --help, SO_REUSEPORT.
 * Each test starts its own server(s).
 */
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  startServer,
  runStorm,
  freePort,
  WsClient,
  RawSocket,
  wsConnectRaw,
  frameSummary,
  sanitizerReport,
  httpGet,
  sleep,
  killStragglers,
} = require('./helpers');

/* A test that failed half-way must not leave a server keeping this file alive. */
after(() => {
  const n = killStragglers();
  if (n) throw new Error(`${n} server(s) were still running at the end of the file (killed)`);
});

test('SIGTERM with 2 WebSocket clients: both get close 1001, exit 0 within --shutdown-timeout 3s', async () => {
  const srv = await startServer(['--shutdown-timeout', '3s']);
  const clients = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await WsClient.open(srv.wsUrl());
      assert.equal((await c.next()).op, 'hello');
      clients.push(c);
    }
    const r = await srv.terminate('SIGTERM', 5000);
    assert.equal(r.killed, false, `still running 5 s after SIGTERM; stderr:\n${srv.tail()}`);
    assert.ok(r.ms <= 3500, `exit took ${r.ms} ms, --shutdown-timeout is 3 s`);
    assert.equal(r.signal, null, `killed by ${r.signal}; stderr:\n${srv.tail()}`);
    assert.equal(r.code, 0, `exit code ${r.code}; stderr:\n${srv.tail()}`);
    for (const c of clients) {
      const info = await c.waitClose(1000);
      assert.equal(info.code, 1001, JSON.stringify(info));
    }
    assert.ok(!sanitizerReport(r.stderr), r.stderr);
  } finally {
    for (const c of clients) c.terminate();
    await srv.stop();
  }
});

test('SIGTERM with a raw WebSocket that never answers the close: gets 1001, exit 0 within --shutdown-timeout 3s', async () => {
  const srv = await startServer(['--shutdown-timeout', '3s']);
  let sock;
  try {
    ({ sock } = await wsConnectRaw(srv));
    const r = await srv.terminate('SIGTERM', 5000);
    assert.equal(r.killed, false, `still running 5 s after SIGTERM; stderr:\n${srv.tail()}`);
    assert.ok(r.ms <= 3500, `exit took ${r.ms} ms, --shutdown-timeout is 3 s`);
    assert.equal(r.code, 0, `exit ${JSON.stringify(r)}; stderr:\n${srv.tail()}`);
    const { close } = await sock.readUntilClose(1000);
    assert.equal(close.code, 1001, JSON.stringify(frameSummary(close)));
    assert.ok(await sock.waitClosed(1000), 'TCP still open after the process exited');
  } finally {
    if (sock) sock.destroy();
    await srv.stop();
  }
});

test('SIGTERM with an idle keep-alive HTTP connection: closed, exit 0 quickly', async () => {
  const srv = await startServer(['--shutdown-timeout', '3s'], { token: false });
  let s;
  try {
    s = await RawSocket.connect(srv.port);
    await s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await s.readResponse()).status, 200);
    const r = await srv.terminate('SIGTERM', 5000);
    assert.equal(r.code, 0, `exit ${JSON.stringify(r)}; stderr:\n${srv.tail()}`);
    assert.ok(r.ms < 2000, `an idle keep-alive connection held shutdown for ${r.ms} ms`);
    assert.ok(await s.waitClosed(1000), 'idle connection not closed by shutdown');
  } finally {
    if (s) s.destroy();
    await srv.stop();
  }
});

test('storm serve --port abc → exit 2 with a message naming --port (with and without a token key)', async () => {
  for (const env of [{ STORM_JWT_SECRET: '' }, { STORM_JWT_SECRET: 'blackbox-tests-only-not-a-secret-0123456789' }]) {
    const r = await runStorm(['serve', '--port', 'abc'], { env: { ...process.env, ...env } });
    assert.equal(r.code, 2, JSON.stringify(r));
    assert.match(r.stderr, /--port/, JSON.stringify(r));
    assert.ok(!sanitizerReport(r.stderr), r.stderr);
  }
});

test('storm serve without --jwt-secret (and not --dev) → exit 2 naming --jwt-secret', async () => {
  const r = await runStorm(['serve', '--port', '0'], { env: { ...process.env, STORM_JWT_SECRET: '' } });
  assert.equal(r.code, 2, JSON.stringify(r));
  assert.match(r.stderr, /--jwt-secret/, JSON.stringify(r));
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
});

test('storm serve --help → exit 0, lists --port and PORT', async () => {
  const r = await runStorm(['serve', '--help']);
  assert.equal(r.code, 0, JSON.stringify(r));
  const out = r.stdout + r.stderr;
  assert.match(out, /--port\b/, out);
  assert.match(out, /\bPORT\b/, out);
  assert.ok(!sanitizerReport(r.stderr), r.stderr);
});

test('two instances with --reuseport on the same fixed port both start and serve', async () => {
  const port = await freePort();
  const a = await startServer(['--port', String(port), '--reuseport']);
  let b;
  try {
    b = await startServer(['--port', String(port), '--reuseport']);
    assert.equal(a.port, port);
    assert.equal(b.port, port);
    const r = await httpGet(port, '/healthz');
    assert.equal(r.status, 200);
  } finally {
    if (b) await b.stop();
    await a.stop();
  }
});

test('without --reuseport a second instance on a taken port exits 1', async () => {
  const port = await freePort();
  const a = await startServer(['--port', String(port)]);
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-bb-'));
  try {
    const r = await runStorm(['serve', '--port', String(port), '--data', other]);
    assert.equal(r.code, 1, JSON.stringify(r));
    assert.match(r.stderr, /listen|bind|in use/i, r.stderr);
  } finally {
    await sleep(10);
    await a.stop();
    fs.rmSync(other, { recursive: true, force: true });
  }
});

/* The duplicate check of nonces lives in the appending process's memory
 * (docs/storage.md): a second process appending to the same SQLite file
 * would not see the first one's nonces, so it is refused with a reason,
 * and the first one keeps serving. */
test('a second instance on the same data directory exits 1 and names the lock', async () => {
  const a = await startServer();
  try {
    const r = await runStorm(['serve', '--port', String(await freePort()), '--data', a.dataDir]);
    assert.equal(r.code, 1, JSON.stringify(r));
    assert.match(r.stderr, /another messages store appends to .*storm\.db-append\.lock is locked/, r.stderr);
    const h = await httpGet(a.port, '/healthz');
    assert.equal(h.status, 200);
  } finally {
    await a.stop();
  }
});
