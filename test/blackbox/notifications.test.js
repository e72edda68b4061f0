'use strict';
/*
 * notifications.test.js — the notifications service through the real
 * binary (issue 8; docs/notifications.md): a DM reaches every device of
 * the recipient live and is listed by GET /notifications; a mention
 * notifies only the mentioned member; a muted channel notifies nobody; the
 * sender never notifies themselves; 150 notifications leave the 100
 * newest; read all / by ids, never another user's; bad bodies are 400.
 * With Redis (--redis): the list key carries a 7-day TTL, and a Redis
 * killed and restarted under the server (its own redis-server) makes the
 * store fail fast and readyz red, then serve again by itself.
 *
 * The first part also runs in the cluster topology (STORM_TEST_TOPOLOGY=
 * cluster: 2 notifications replicas on Redis); the Redis-specific tests
 * are single-process (they start their own servers).
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const { serverFixture, startServer, killStragglers, apiCall, newUser, wsOpen, sleep, show, freePort } = require('./helpers');

const CLUSTER = process.env.STORM_TEST_TOPOLOGY === 'cluster';
const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000'];

const open = [];
after(async () => {
  for (const c of open) c.terminate();
  await sleep(100);
});

const fx = serverFixture(FAST, { token: false });
before(fx.start);
afterEach(fx.check);
after(fx.finish);
after(() => killStragglers());

let counter = 0;
const uname = (p) => `${p}${process.pid % 1000}n${++counter}`;
const J = (v) => JSON.stringify(v);

async function api(method, p, u, body, port = fx.port) {
  return apiCall(port, method, p, u && u.token, body);
}

function expectStatus(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${show(r.text)}`);
  return r.json;
}

async function device(u, port = fx.port) {
  const c = await wsOpen(port, u.token);
  open.push(c);
  const h = await c.next(5000);
  assert.equal(h.op, 'hello', `first frame: ${J(h)}`);
  return c;
}

const notifsOf = (c) => c.queue.filter((m) => m && m.op === 'notification').map((m) => m.notification);

async function dmWith(a, b, port = fx.port) {
  return expectStatus(await api('POST', `/dm/${b.username}`, a, undefined, port), 200, 'open DM').channel;
}

async function send(u, chId, body, port = fx.port) {
  return expectStatus(await api('POST', `/channels/${chId}/messages`, u, { body }, port), 201, `send to ${chId}`);
}

async function list(u, port = fx.port) {
  return expectStatus(await api('GET', '/notifications', u, undefined, port), 200, `GET /notifications for ${u.username}`).notifications;
}

/* Polls GET /notifications until pred holds (notifications are stored after the message's ack). */
async function listUntil(u, pred, what, port = fx.port, ms = 5000) {
  const end = Date.now() + ms;
  let l;
  do {
    l = await list(u, port);
    if (pred(l)) return l;
    await sleep(50);
  } while (Date.now() < end);
  assert.fail(`${what}: ${J(l)}`);
}

/* Absence needs a wait: a marker notification sent after the event must arrive first. */
async function settle(u, port = fx.port) {
  const peer = await newUser(port, uname('mk'));
  const dm = await dmWith(peer, u, port);
  const m = await send(peer, dm.id, 'marker');
  await listUntil(u, (l) => l.some((n) => n.payload.messageId === m.id), 'marker notification', port);
  return m.id;
}

test('DM: a live `notification` on every device of the recipient, listed by GET /notifications; nothing for the sender', async () => {
  const alice = await newUser(fx.port, uname('al'));
  const bob = await newUser(fx.port, uname('bo'));
  const dm = await dmWith(alice, bob);
  const b1 = await device(bob);
  const b2 = await device(bob);
  const a1 = await device(alice);
  const m = await send(alice, dm.id, 'hello bob');
  for (const c of [b1, b2]) {
    const n = await c.until(() => notifsOf(c)[0], 5000, 'live notification');
    assert.equal(n.type, 'dm', J(n));
    assert.deepEqual(n.payload, { conversationId: dm.id, messageId: m.id, senderUsername: alice.username });
    assert.match(n.id, /^[1-9][0-9]*$/);
    assert.ok(Number.isInteger(n.created_at), J(n));
  }
  assert.deepEqual(notifsOf(b1), notifsOf(b2));
  const l = await list(bob);
  assert.equal(l.length, 1, J(l));
  assert.deepEqual(l[0], notifsOf(b1)[0]);
  await sleep(200);
  assert.equal(notifsOf(a1).length, 0, `sender got ${J(notifsOf(a1))}`);
  assert.deepEqual(await list(alice), []);
});

test('mention in a channel notifies only the mentioned member; the sender mentioning themselves gets nothing', async () => {
  const alice = await newUser(fx.port, uname('al'));
  const bob = await newUser(fx.port, uname('bo'));
  const carol = await newUser(fx.port, uname('ca'));
  const ch = expectStatus(await api('POST', '/channels', alice, { name: uname('ch') }), 201, 'create').channel;
  for (const u of [bob, carol]) expectStatus(await api('POST', `/channels/${ch.id}/join`, u), 200, 'join');
  const c1 = await device(carol);
  const m = await send(alice, ch.id, `hey @${bob.username} and @${alice.username}`);
  const l = await listUntil(bob, (x) => x.length === 1, 'bob mentioned');
  assert.equal(l[0].type, 'mention');
  assert.deepEqual(l[0].payload, { conversationId: ch.id, messageId: m.id, senderUsername: alice.username });
  await settle(carol);
  assert.equal((await list(carol)).filter((n) => n.payload.conversationId === ch.id).length, 0);
  assert.equal(notifsOf(c1).filter((n) => n.payload.conversationId === ch.id).length, 0);
  await settle(alice);
  assert.equal((await list(alice)).filter((n) => n.payload.conversationId === ch.id).length, 0, 'self-mention notified');
});

test('muted channel notifies nobody; unmuted again it does', async () => {
  const alice = await newUser(fx.port, uname('al'));
  const bob = await newUser(fx.port, uname('bo'));
  const ch = expectStatus(await api('POST', '/channels', alice, { name: uname('mu') }), 201, 'create').channel;
  expectStatus(await api('POST', `/channels/${ch.id}/join`, bob), 200, 'join');
  assert.deepEqual(expectStatus(await api('GET', `/channels/${ch.id}/mute`, bob), 200, 'mute get'), { channelId: ch.id, muted: false });
  assert.deepEqual(expectStatus(await api('PUT', `/channels/${ch.id}/mute`, bob, { muted: true }), 200, 'mute'), { channelId: ch.id, muted: true });
  assert.deepEqual(expectStatus(await api('GET', `/channels/${ch.id}/mute`, bob), 200, 'mute get'), { channelId: ch.id, muted: true });
  const b1 = await device(bob);
  await send(alice, ch.id, `@${bob.username} are you there?`);
  await settle(bob);
  assert.equal((await list(bob)).filter((n) => n.payload.conversationId === ch.id).length, 0);
  assert.equal(notifsOf(b1).filter((n) => n.payload.conversationId === ch.id).length, 0);
  /* A muted DM too. */
  const dm = await dmWith(alice, bob);
  expectStatus(await api('PUT', `/channels/${dm.id}/mute`, bob, { muted: true }), 200, 'mute dm');
  await send(alice, dm.id, 'psst');
  await settle(bob);
  assert.equal((await list(bob)).filter((n) => n.payload.conversationId === dm.id).length, 0);
  expectStatus(await api('PUT', `/channels/${ch.id}/mute`, bob, { muted: false }), 200, 'unmute');
  const m = await send(alice, ch.id, `@${bob.username} now?`);
  await listUntil(bob, (l) => l.some((n) => n.payload.messageId === m.id), 'notified after unmute');
});

test('cap: 150 notifications leave the 100 newest', async () => {
  const alice = await newUser(fx.port, uname('al'));
  const bob = await newUser(fx.port, uname('bo'));
  const dm = await dmWith(alice, bob);
  const ids = [];
  for (let i = 0; i < 150; i += 10) {
    const batch = await Promise.all(Array.from({ length: 10 }, (_, k) => send(alice, dm.id, `n${i + k}`)));
    ids.push(...batch.map((a) => a.id));
  }
  const want = ids.sort((x, y) => (BigInt(y) > BigInt(x) ? 1 : -1)).slice(0, 100);
  /* Notifications are created in the order message.sent arrives, which
   * follows the acks (and, in a cluster, two replicas): compare as sets. */
  const sorted = [...want].sort();
  const l = await listUntil(bob, (x) => x.length === 100 && J(x.map((n) => n.payload.messageId).sort()) === J(sorted),
    '100 newest', fx.port, 10000);
  /* Newest first = stored last first; one process's ids also grow with it
   * (two replicas' ids interleave by node, so only then is it checked). */
  if (!CLUSTER) for (let i = 1; i < l.length; i++) assert.ok(BigInt(l[i - 1].id) > BigInt(l[i].id), 'newest first');
});

test('read: by ids, then all; another user cannot read or mark them', async () => {
  const alice = await newUser(fx.port, uname('al'));
  const bob = await newUser(fx.port, uname('bo'));
  const mallory = await newUser(fx.port, uname('ma'));
  const dm = await dmWith(alice, bob);
  for (let i = 0; i < 4; i++) await send(alice, dm.id, `m${i}`);
  const l = await listUntil(bob, (x) => x.length === 4, 'four notifications');
  const ids = l.map((n) => n.id);
  /* Mallory marks Bob's ids: nothing happens, and her list never shows them. */
  assert.deepEqual(expectStatus(await api('POST', '/notifications/read', mallory, { ids }), 200, 'mallory read'), { read: 0 });
  assert.deepEqual(await list(mallory), []);
  assert.equal((await list(bob)).length, 4);
  assert.deepEqual(expectStatus(await api('POST', '/notifications/read', bob, { ids: [ids[1], ids[3], '12345'] }), 200, 'read ids'), { read: 2 });
  assert.deepEqual((await list(bob)).map((n) => n.id), [ids[0], ids[2]]);
  assert.deepEqual(expectStatus(await api('POST', '/notifications/read', bob, {}), 200, 'read all'), { read: 2 });
  assert.deepEqual(await list(bob), []);
  assert.deepEqual(expectStatus(await api('POST', '/notifications/read', bob), 200, 'read all, no body'), { read: 0 });
});

test('bad requests: 401 without a token, 400 for bad bodies, 404 for a bad channel id, 415 for a non-JSON body', async () => {
  const bob = await newUser(fx.port, uname('bo'));
  expectStatus(await api('GET', '/notifications', null), 401, 'no token');
  expectStatus(await api('POST', '/notifications/read', null, {}), 401, 'no token');
  expectStatus(await api('PUT', '/channels/1/mute', null, { muted: true }), 401, 'no token');
  for (const body of [{ ids: 'all' }, { ids: [0] }, { ids: ['01'] }, { ids: [{}] }, { ids: Array.from({ length: 101 }, (_, i) => i + 1) }, '[1,2]', '{"ids":'])
    assert.equal((await api('POST', '/notifications/read', bob, body)).status, 400, `read ${J(body)}`);
  for (const body of [{}, { muted: 'yes' }, { muted: 1 }, { muted: null }, '"x"'])
    assert.equal((await api('PUT', '/channels/5/mute', bob, body)).status, 400, `mute ${J(body)}`);
  assert.equal((await api('PUT', '/channels/0/mute', bob, { muted: true })).status, 404);
  assert.equal((await api('PUT', '/channels/x/mute', bob, { muted: true })).status, 404);
  const r = await apiCall(fx.port, 'PUT', '/channels/5/mute', bob.token, undefined);
  assert.ok(r.status === 415 || r.status === 400, `no body: ${r.status}`);
  assert.deepEqual(await list(bob), []);
});

/* ---------------------------------------------------------------- Redis */

const REDIS = process.env.STORM_TEST_REDIS;
function redisCli(addr, ...args) {
  const [host, port] = addr.split(':');
  return execFileSync('redis-cli', ['-h', host, '-p', port, '--raw', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

test('Redis: the list key carries a 7-day TTL', { skip: CLUSTER && 'single-process test' }, async () => {
  assert.ok(REDIS, 'STORM_TEST_REDIS is not set: start Redis with scripts/infra.sh start DIR and source DIR/env');
  const srv = await startServer([...FAST, '--redis', REDIS], { token: false });
  try {
    const alice = await newUser(srv.port, uname('al'));
    const bob = await newUser(srv.port, uname('bo'));
    const dm = await dmWith(alice, bob, srv.port);
    await waitReady(srv.port);
    /* User ids restart at 1 with each fresh data directory: a shared Redis
     * may hold an earlier run's list for this id. */
    redisCli(REDIS, 'DEL', `storm:notif:{${bob.id}}`);
    await send(alice, dm.id, 'ttl?', srv.port);
    await listUntil(bob, (l) => l.length === 1, 'stored in Redis', srv.port);
    const ttl = Number(redisCli(REDIS, 'TTL', `storm:notif:{${bob.id}}`));
    assert.ok(ttl > 7 * 86400 - 60 && ttl <= 7 * 86400, `TTL ${ttl}`);
    assert.equal(redisCli(REDIS, 'LLEN', `storm:notif:{${bob.id}}`), '1');
  } finally {
    await srv.stop();
  }
});

async function waitReady(port, want = 200, ms = 10000) {
  const end = Date.now() + ms;
  let r;
  do {
    r = await apiCall(port, 'GET', '/readyz');
    if (r.status === want) return r;
    await sleep(100);
  } while (Date.now() < end);
  assert.fail(`readyz never ${want}: ${r.status} ${show(r.text)}`);
}

function startRedis(port) {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  return p;
}

async function redisUp(addr) {
  for (let i = 0; i < 100; i++) {
    try {
      if (redisCli(addr, 'PING') === 'PONG') return;
    } catch { /* not yet */ }
    await sleep(50);
  }
  assert.fail(`redis at ${addr} did not start`);
}

test('Redis killed and restarted: fail fast and readyz red while down, serving again after', { skip: CLUSTER && 'single-process test' }, async () => {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  let redis = startRedis(port);
  await redisUp(addr);
  const srv = await startServer([...FAST, '--redis', addr], { token: false });
  try {
    const alice = await newUser(srv.port, uname('al'));
    const bob = await newUser(srv.port, uname('bo'));
    const dm = await dmWith(alice, bob, srv.port);
    await waitReady(srv.port);
    await send(alice, dm.id, 'before', srv.port);
    await listUntil(bob, (l) => l.length === 1, 'stored before the kill', srv.port);

    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    const red = await waitReady(srv.port, 503);
    assert.equal(JSON.parse(red.text).checks.notifications_store, 'down', red.text);
    const t0 = Date.now();
    const r = await api('GET', '/notifications', bob, undefined, srv.port);
    assert.equal(r.status, 503, show(r.text));
    assert.equal(r.json.error.code, 'unavailable');
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms: must fail fast`);
    /* Messaging itself keeps working; the notification is lost (best effort). */
    await send(alice, dm.id, 'while down', srv.port);

    redis = startRedis(port);
    await redisUp(addr);
    await waitReady(srv.port, 200, 15000);
    const m = await send(alice, dm.id, 'after', srv.port);
    const l = await listUntil(bob, (x) => x.length === 1, 'stored after the restart', srv.port);
    assert.equal(l[0].payload.messageId, m.id);
    assert.ok(srv.stderr.includes('"component":"redis"'), 'the reconnect is logged');
  } finally {
    await srv.stop();
    redis.kill('SIGKILL');
  }
});
