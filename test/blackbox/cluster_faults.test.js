'use strict';
/*
 * cluster_faults.test.js — distributed mode under injected incidents, on a
 * real local cluster (scripts/cluster.sh: 3 NATS nodes, PostgreSQL, Redis,
 * S3, 3 gateways on one port, 2 replicas of every other service):
 *
 *  - clients on different gateways see each other's messages, presence,
 *    typing (which gateway a client landed on is read from `ss`);
 *  - kill -9 of a NATS node during sends: clients keep sending and
 *    receiving; every acked message is in history exactly once;
 *  - kill -9 of a messages replica during sends: the other one serves;
 *    every acked message is durable; a retry with the same nonce lands once;
 *  - PostgreSQL stopped for 5 s: sends fail with a clear error within the
 *    request timeout, readyz of the messages replicas goes red, and all
 *    recovers by itself;
 *  - media: an upload through one gateway downloads through all three (S3
 *    and PostgreSQL shared), and kill -9 of a media replica leaves
 *    uploads, downloads and deletes working;
 *  - Redis killed: messaging keeps working, presence degrades to per gateway.
 *
 * Clients retry a send that got an error or no ack with the same nonce
 * (what a real client does); the checks are on what was acked.
 */
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { killStragglers, newUser, wsOpen, apiCall, sleep, STORM_BIN } = require('./helpers');
const { startCluster } = require('./cluster');

after(() => killStragglers());

const ARGS = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000',
  '--ws-send-rate', '100000', '--ws-send-burst', '100000'];
const TEST_ENV = { STORM_JWT_SECRET: 'blackbox-tests-only-not-a-secret-0123456789' };
const J = (v) => JSON.stringify(v);
const tag = () => crypto.randomBytes(3).toString('hex');

let cl = null;
async function cluster() {
  if (!cl) cl = await startCluster(STORM_BIN, ARGS, TEST_ENV);
  return cl;
}
after(async () => { if (cl) await cl.stop(); });

const pidOf = (c, name) => Number(fs.readFileSync(path.join(c.dir, `${name}.pid`), 'utf8'));

/* Which gateway process holds the TCP connection of a client socket. */
function gatewayOf(ws) {
  const local = ws._socket.localPort;
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${local} )`], { encoding: 'utf8' });
  const m = /pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : null;
}

async function device(port, u) {
  const c = await wsOpen(port, u.token);
  const h = await c.next(5000);
  assert.equal(h.op, 'hello', J(h));
  return c;
}

async function channelOf(port, owner, members) {
  const r = await apiCall(port, 'POST', '/channels', owner.token, { name: `f${tag()}` });
  assert.equal(r.status, 201, r.text);
  const ch = r.json.channel;
  for (const m of members) {
    const j = await apiCall(port, 'POST', `/channels/${ch.id}/join`, m.token);
    assert.equal(j.status, 200, j.text);
  }
  return ch;
}

/*
 * Sends `n` messages from client c, one at a time, each retried with its
 * nonce until acked (or deadline). Calls hook(i) before message i.
 * Resolves {acked: Map nonce → {id, seq}, errors: [codes]}.
 */
async function sendAll(c, chanId, n, prefix, hook, deadlineMs = 60000) {
  const acked = new Map();
  const errors = [];
  const end = Date.now() + deadlineMs;
  for (let i = 0; i < n; i++) {
    if (hook) await hook(i);
    const nonce = `${prefix}-${i}`;
    for (;;) {
      assert.ok(Date.now() < end, `no ack for ${nonce} before the deadline; errors ${J(errors.slice(-5))}`);
      const ref = `${nonce}#${crypto.randomBytes(2).toString('hex')}`;
      c.send({ op: 'send', channel_id: chanId, body: `body ${nonce}`, nonce, ref });
      let r;
      try {
        r = await c.until(() => {
          const k = c.queue.findIndex((m) => m && m.ref === ref);
          return k >= 0 ? c.queue.splice(k, 1)[0] : null;
        }, 15000, `answer to ${ref}`);
      } catch {
        errors.push('no_answer');
        continue;
      }
      if (r.op === 'ack') {
        const prev = acked.get(nonce);
        if (prev) assert.deepEqual([r.id, r.seq], [prev.id, prev.seq], `nonce ${nonce} acked twice differently`);
        acked.set(nonce, { id: r.id, seq: r.seq });
        break;
      }
      errors.push(r.code);
      await sleep(200);
    }
  }
  return { acked, errors };
}

async function history(port, u, chanId) {
  const all = [];
  let after = 0;
  for (;;) {
    const r = await apiCall(port, 'GET', `/channels/${chanId}/messages?after=${after}&limit=100`, u.token);
    assert.equal(r.status, 200, r.text);
    all.push(...r.json.messages);
    if (!r.json.more) return all;
    after = r.json.messages[r.json.messages.length - 1].seq;
  }
}

function checkHistory(msgs, acked) {
  const seqs = msgs.map((m) => m.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'history has a gap or is out of order');
  const byNonce = new Map();
  for (const m of msgs) {
    assert.ok(!byNonce.has(m.nonce), `nonce ${m.nonce} stored twice`);
    byNonce.set(m.nonce, m);
  }
  for (const [nonce, a] of acked) {
    const m = byNonce.get(nonce);
    assert.ok(m, `acked ${nonce} missing from history`);
    assert.deepEqual([m.id, m.seq], [a.id, a.seq], `acked ${nonce} stored differently`);
  }
}

test('clients on different gateways see each other\'s messages, typing and presence', async () => {
  const c = await cluster();
  const t = tag();
  const owner = await newUser(c.port, `go${t}`);
  const others = [];
  for (let i = 0; i < 5; i++) others.push(await newUser(c.port, `gm${i}${t}`));
  const ch = await channelOf(c.port, owner, others);
  const devs = [];
  for (const u of others) devs.push(await device(c.port, u));
  const gws = new Set(devs.map((d) => gatewayOf(d.ws)));
  assert.ok(gws.size >= 2, `every client landed on one gateway (${[...gws]}): the test proves nothing`);
  const o = await device(c.port, owner);
  const oGw = gatewayOf(o.ws);
  /* Presence of the owner reaches members on every gateway. */
  for (const d of devs) await d.until(() => d.queue.find((m) => m.op === 'presence' && m.user_id === owner.id), 5000, 'presence');
  o.send({ op: 'typing', channel_id: ch.id });
  o.send({ op: 'send', channel_id: ch.id, body: 'across gateways', nonce: 'x1', ref: 1 });
  await o.until(() => o.queue.find((m) => m.op === 'ack'), 5000, 'ack');
  for (const d of devs) {
    await d.until(() => d.queue.find((m) => m.op === 'message' && m.message.body === 'across gateways'), 5000, 'message');
    await d.until(() => d.queue.find((m) => m.op === 'typing' && m.user_id === owner.id), 5000, 'typing');
  }
  assert.ok(devs.some((d) => gatewayOf(d.ws) !== oGw), 'no receiver on another gateway than the sender');
  for (const d of [...devs, o]) d.ws.close(1000);
});

async function senderAndReceiver(c) {
  const t = tag();
  const a = await newUser(c.port, `sa${t}`);
  const b = await newUser(c.port, `sb${t}`);
  const ch = await channelOf(c.port, a, [b]);
  const sa = await device(c.port, a);
  const rb = await device(c.port, b);
  return { a, b, ch, sa, rb };
}

test('kill -9 of a NATS node during sends: sending and receiving go on; every acked message stored once', async () => {
  const c = await cluster();
  const { a, ch, sa, rb } = await senderAndReceiver(c);
  let killedAt = 0;
  const { acked } = await sendAll(sa, ch.id, 120, 'nk', async (i) => {
    if (i === 40) {
      process.kill(pidOf(c, 'nats1'), 'SIGKILL');
      killedAt = Date.now();
    }
    await sleep(10);
  });
  assert.equal(acked.size, 120);
  /* Live delivery works after the kill (the receiver got the last ones). */
  await rb.until(() => rb.queue.some((m) => m.op === 'message' && m.message.nonce === 'nk-119'), 15000, 'last message live');
  checkHistory(await history(c.port, a, ch.id), acked);
  assert.ok(killedAt > 0);
  sa.ws.close(1000);
  rb.ws.close(1000);
});

test('kill -9 of a messages replica during sends: the other serves; acked ⊆ stored; retries land once', async () => {
  const c = await cluster();
  const { a, ch, sa, rb } = await senderAndReceiver(c);
  const { acked, errors } = await sendAll(sa, ch.id, 100, 'mk', async (i) => {
    if (i === 30) {
      c.expectDead.add('messages1');
      process.kill(pidOf(c, 'messages1'), 'SIGKILL');
    }
    await sleep(5);
  }, 90000);
  assert.equal(acked.size, 100, `errors: ${J(errors)}`);
  checkHistory(await history(c.port, a, ch.id), acked);
  await rb.until(() => rb.queue.some((m) => m.op === 'message' && m.message.nonce === 'mk-99'), 15000, 'last message live');
  sa.ws.close(1000);
  rb.ws.close(1000);
});

/* One HTTP request on a fresh connection (agent: false): the kernel picks
 * the gateway of each connection anew (SO_REUSEPORT). */
function httpFresh(port, method, p, token, body, headers = {}) {
  const http = require('node:http');
  return new Promise((resolve, reject) => {
    const h = { ...headers, Authorization: `Bearer ${token}` };
    if (body) h['Content-Length'] = String(body.length);
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: h, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const GIF = Buffer.from([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21, 0xf9, 4,
  1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 1, 0x44, 0, 0x3b]);

async function uploadFresh(port, u, name) {
  const b = '----stormClusterMedia';
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/gif\r\n\r\n`),
    GIF, Buffer.from(`\r\n--${b}--\r\n`)]);
  const r = await httpFresh(port, 'POST', '/media/upload', u.token, body, { 'Content-Type': `multipart/form-data; boundary=${b}` });
  assert.equal(r.status, 201, `upload: ${r.status} ${r.body}`);
  return JSON.parse(r.body.toString()).key;
}

/* Objects live in the cluster's S3 server and metadata in PostgreSQL: an
 * upload taken by one gateway is served by all three (30 fresh
 * connections over 3 gateways: with per-gateway disks about 2 in 3 would
 * be 404), and the media service's two replicas share the requests. */
test('media: uploads through one gateway download through every gateway; kill -9 of a media replica: uploads, downloads, deletes go on', async () => {
  const c = await cluster();
  const a = await newUser(c.port, `ma${tag()}`);
  const key = await uploadFresh(c.port, a, 'cat.gif');
  for (let i = 0; i < 30; i++) {
    const r = await httpFresh(c.port, 'GET', `/media/${key}`, a.token);
    assert.equal(r.status, 200, `download ${i}: ${r.status} ${r.body}`);
    assert.ok(r.body.equals(GIF), `download ${i}: other bytes`);
  }
  c.expectDead.add('media1');
  process.kill(pidOf(c, 'media1'), 'SIGKILL');
  const keys = [];
  for (let i = 0; i < 5; i++) keys.push(await uploadFresh(c.port, a, `after${i}.gif`));
  for (const k of [key, ...keys]) {
    const r = await httpFresh(c.port, 'GET', `/media/${k}`, a.token);
    assert.equal(r.status, 200, `download ${k} after the kill: ${r.status} ${r.body}`);
  }
  assert.equal((await httpFresh(c.port, 'DELETE', `/media/${keys[0]}`, a.token)).status, 204);
  for (let i = 0; i < 6; i++) /* every gateway agrees: gone */
    assert.equal((await httpFresh(c.port, 'GET', `/media/${keys[0]}`, a.token)).status, 404);
});

function readyz(port) {
  try {
    return Number(execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://127.0.0.1:${port}/readyz`], { encoding: 'utf8' }));
  } catch {
    return 0;
  }
}

test('PostgreSQL stopped for 5 s: sends fail fast with a clear error, readyz red, then everything recovers', async () => {
  const c = await cluster();
  const { a, ch, sa } = await senderAndReceiver(c);
  const procs = fs.readFileSync(path.join(c.dir, 'procs'), 'utf8').trim().split('\n').map((l) => l.split(' '));
  const msgPort = Number(procs.find((p) => p[0] === 'messages2')[2]);
  assert.equal(readyz(msgPort), 200);
  const pgData = path.join(c.dir, 'pg', 'data');
  execFileSync('runuser', ['-u', 'postgres', '--', '/usr/lib/postgresql/15/bin/pg_ctl', '-D', pgData, '-m', 'fast', '-w', 'stop'], { stdio: 'ignore' });
  const t0 = Date.now();
  try {
    sa.send({ op: 'send', channel_id: ch.id, body: 'while down', nonce: 'down-1', ref: 'd1' });
    const r = await sa.until(() => sa.queue.find((m) => m.ref === 'd1'), 12000, 'answer while PostgreSQL is down');
    assert.equal(r.op, 'error', J(r));
    assert.ok(['unavailable', 'internal', 'timeout', 'overloaded'].includes(r.code), J(r));
    assert.ok(Date.now() - t0 < 12000);
    let red = false;
    for (let i = 0; i < 30 && !red; i++) { red = readyz(msgPort) === 503; if (!red) await sleep(200); }
    assert.ok(red, 'readyz of a messages replica stayed green with PostgreSQL down');
    await sleep(Math.max(0, 5000 - (Date.now() - t0)));
  } finally {
    execFileSync('runuser', ['-u', 'postgres', '--', '/usr/lib/postgresql/15/bin/pg_ctl', '-D', pgData, '-l', path.join(c.dir, 'pg', 'log'), '-w',
      '-o', `-c listen_addresses=127.0.0.1 -p ${new URL(c.db).port} -k ${path.join(c.dir, 'pg')} -c max_connections=200`, 'start'], { stdio: 'ignore' });
  }
  /* Every replica that uses the database turns ready again by itself. */
  const dbPorts = procs.filter((p) => /^(users|messages)/.test(p[0]) && p[0] !== 'messages1').map((p) => Number(p[2]));
  let green = false;
  for (let i = 0; i < 50 && !green; i++) { green = dbPorts.every((p) => readyz(p) === 200); if (!green) await sleep(200); }
  assert.ok(green, 'readyz did not recover after PostgreSQL came back');
  const { acked } = await sendAll(sa, ch.id, 5, 'up', null, 30000);
  assert.equal(acked.size, 5);
  /* The refused send left nothing half-written: history is gapless and
   * holds each acked message once. */
  checkHistory(await history(c.port, a, ch.id), acked);
  sa.ws.close(1000);
});

test('Redis killed: messaging keeps working and presence degrades to per gateway', async () => {
  const c = await cluster();
  process.kill(Number(fs.readFileSync(path.join(c.dir, 'redis.pid'), 'utf8')), 'SIGKILL');
  await sleep(500);
  const { a, b, ch, sa, rb } = await senderAndReceiver(c);
  const { acked } = await sendAll(sa, ch.id, 10, 'rk', null, 30000);
  assert.equal(acked.size, 10);
  await rb.until(() => rb.queue.some((m) => m.op === 'message' && m.message.nonce === 'rk-9'), 10000, 'delivery without Redis');
  /* A fresh device of a is announced (local decision) to b. */
  sa.ws.close(1000);
  await rb.until(() => rb.queue.some((m) => m.op === 'presence' && m.user_id === a.id && m.status === 'offline'), 10000, 'offline without Redis');
  const sa2 = await device(c.port, a);
  await rb.until(() => rb.queue.some((m) => m.op === 'presence' && m.user_id === a.id && m.status === 'online'), 10000, 'online again without Redis');
  checkHistory(await history(c.port, b, ch.id), acked);
  sa2.ws.close(1000);
  rb.ws.close(1000);
});

