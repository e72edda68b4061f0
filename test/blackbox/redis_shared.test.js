'use strict';
/*
 * redis_shared.test.js — state the gateways share through Redis (--redis):
 * the per-IP auth rate limit holds across gateway processes, presence
 * counts live in Redis, and when Redis is unreachable or dies, auth falls
 * back to per-process limits and messaging keeps working.
 *
 * The shared Redis is STORM_TEST_REDIS (scripts/infra.sh); the test that
 * kills Redis starts its own redis-server. Clients are told apart with
 * X-Forwarded-For from a trusted proxy (127.0.0.1), each test using its
 * own made-up client address, so buckets left by other runs never meet.
 */
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const { startServer, killStragglers, postJson, newUser, wsOpen, wsRequest, apiCall, sleep, show, freePort } = require('./helpers');

after(() => killStragglers());

const REDIS = process.env.STORM_TEST_REDIS;
function needRedis() {
  assert.ok(REDIS, 'STORM_TEST_REDIS is not set: start Redis with scripts/infra.sh start DIR and source DIR/env');
  return REDIS;
}

const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k'];
const fakeIp = () => `198.51.100.${crypto.randomInt(1, 255)}`;

function redisCli(addr, ...args) {
  const [host, port] = addr.split(':');
  return execFileSync('redis-cli', ['-h', host, '-p', port, '--raw', ...args], { encoding: 'utf8' }).trim();
}

async function loginStatus(port, ip) {
  const r = await postJson(port, '/auth/login', { username: 'nobody-here', password: 'some-password' }, { 'X-Forwarded-For': ip });
  return r.status;
}

test('auth rate limit: one bucket per client IP shared by two gateway processes', async () => {
  const redis = needRedis();
  const args = [...FAST, '--redis', redis, '--auth-rate', '1', '--auth-burst', '4', '--trusted-proxies', '127.0.0.1'];
  const a = await startServer(args);
  const b = await startServer(args);
  /* Redis connects in the background: wait until a gateway uses it (a
   * shared bucket appears for a probe address). */
  const probe = `203.0.113.${crypto.randomInt(1, 255)}`;
  redisCli(redis, 'DEL', `storm:rl:${probe}`);
  for (let i = 0; i < 50 && redisCli(redis, 'EXISTS', `storm:rl:${probe}`) !== '1'; i++) {
    await loginStatus(a.port, probe);
    await loginStatus(b.port, probe);
    await sleep(100);
  }
  assert.equal(redisCli(redis, 'EXISTS', `storm:rl:${probe}`), '1', 'no shared bucket in Redis');

  const ip = `192.0.2.${crypto.randomInt(1, 255)}`;
  redisCli(redis, 'DEL', `storm:rl:${ip}`);
  const got = [];
  for (let i = 0; i < 6; i++) got.push(await loginStatus(i % 2 ? b.port : a.port, ip));
  /* Burst 4 in total, not 4 per process: two each pass, then 429 on both. */
  assert.deepEqual(got, [401, 401, 401, 401, 429, 429], `statuses: ${got}`);
  const ttl = Number(redisCli(redis, 'PTTL', `storm:rl:${ip}`));
  assert.ok(ttl > 0 && ttl <= 5000, `bucket key TTL ${ttl} ms`);
  /* Another client address is not affected. */
  assert.equal(await loginStatus(b.port, fakeIp()), 401);
  await a.stop();
  await b.stop();
});

test('auth rate limit: Redis unreachable → per-process limit, auth keeps working', async () => {
  const dead = `127.0.0.1:${await freePort()}`;
  const srv = await startServer([...FAST, '--redis', dead, '--auth-rate', '1', '--auth-burst', '3', '--trusted-proxies', '127.0.0.1']);
  const ip = fakeIp();
  const got = [];
  for (let i = 0; i < 4; i++) got.push(await loginStatus(srv.port, ip));
  assert.deepEqual(got, [401, 401, 401, 429], `statuses: ${got}`);
  const u = await newUser(srv.port, `rd${crypto.randomBytes(3).toString('hex')}`);
  assert.ok(u.token);
  /* Presence and rate limits do not need Redis: what reports on it is
   * only the notifications store, whose data lives there (issue 8: red
   * while Redis is down). */
  const ready = await apiCall(srv.port, 'GET', '/readyz');
  assert.equal(ready.status, 503, `readyz with Redis down: ${ready.status} ${show(ready.text)}`);
  const checks = JSON.parse(ready.text).checks;
  const down = Object.keys(checks).filter((k) => checks[k] !== 'ok');
  assert.deepEqual(down, ['notifications_store'], show(ready.text));
  await srv.stop();
  /* Without the notifications service, Redis down leaves the process ready. */
  const gw = await startServer([...FAST, '--redis', dead, '--services', 'gateway,users,messages,media']);
  const ready2 = await apiCall(gw.port, 'GET', '/readyz');
  assert.equal(ready2.status, 200, `readyz with Redis down, no notifications: ${ready2.status} ${show(ready2.text)}`);
  await gw.stop();
});

async function channelWith(port, owner, member) {
  const ch = await apiCall(port, 'POST', '/channels', owner.token, { name: `pr${crypto.randomBytes(3).toString('hex')}` });
  assert.equal(ch.status, 201, show(ch.text));
  const id = JSON.parse(ch.text).channel.id;
  const j = await apiCall(port, 'POST', `/channels/${id}/join`, member.token, {});
  assert.ok(j.status === 200 || j.status === 204, `join: ${j.status} ${show(j.text)}`);
  return id;
}

const presenceOf = (c, uid) => c.queue.filter((m) => m && m.op === 'presence' && m.user_id === uid);

test('presence: device counts live in Redis; online/offline announced once', async () => {
  const redis = needRedis();
  const srv = await startServer([...FAST, '--redis', redis, '--auth-rate', '1000', '--auth-burst', '1000']);
  const tag = crypto.randomBytes(3).toString('hex');
  const owner = await newUser(srv.port, `po${tag}`);
  const wes = await newUser(srv.port, `pw${tag}`);
  const chan = await channelWith(srv.port, owner, wes);
  const o1 = await wsOpen(srv.port, owner.token);
  await o1.until(() => o1.queue.find((m) => m.op === 'hello'), 3000, 'hello');
  const key = `storm:presence:${wes.id}`;
  const devices = () => Object.values(Object.fromEntries(
    redisCli(redis, 'HGETALL', key).split('\n').filter(Boolean).reduce((acc, v, i, arr) => (i % 2 ? acc : [...acc, [v, arr[i + 1]]]), [])
  )).reduce((s, v) => s + Number(v), 0);

  /* The gateway's Redis connection comes up in the background. */
  for (let i = 0; i < 50 && redisCli(redis, 'KEYS', 'storm:gw:*') === ''; i++) await sleep(100);
  const w1 = await wsOpen(srv.port, wes.token);
  const on = await o1.until(() => presenceOf(o1, wes.id)[0], 3000, 'wes online');
  assert.deepEqual(on, { op: 'presence', channel_id: chan, user_id: wes.id, username: wes.username, status: 'online' });
  assert.equal(devices(), 1, `devices in Redis: ${redisCli(redis, 'HGETALL', key)}`);
  const w2 = await wsOpen(srv.port, wes.token);
  await w2.until(() => w2.queue.find((m) => m.op === 'hello'), 3000, 'hello 2');
  for (let i = 0; i < 20 && devices() !== 2; i++) await sleep(50);
  assert.equal(devices(), 2);
  w1.ws.close(1000);
  await w1.waitClose(3000);
  for (let i = 0; i < 20 && devices() !== 1; i++) await sleep(50);
  assert.equal(devices(), 1);
  assert.equal(presenceOf(o1, wes.id).length, 1, 'offline while a device is left');
  w2.terminate();
  const off = await o1.until(() => presenceOf(o1, wes.id)[1], 3000, 'wes offline');
  assert.equal(off.status, 'offline');
  assert.equal(redisCli(redis, 'EXISTS', key), '0', 'presence hash left behind');
  o1.ws.close(1000);
  await srv.stop();
});

test('Redis killed mid-run: messaging keeps working, presence falls back to this gateway', async () => {
  const port = await freePort();
  const start = () => spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp'], { stdio: 'ignore' });
  let redis = start();
  const addr = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if (redisCli(addr, 'PING') === 'PONG') break; } catch { /* not yet */ }
    await sleep(20);
  }
  const srv = await startServer([...FAST, '--redis', addr, '--auth-rate', '1000', '--auth-burst', '1000']);
  try {
    const tag = crypto.randomBytes(3).toString('hex');
    const owner = await newUser(srv.port, `ko${tag}`);
    const zed = await newUser(srv.port, `kz${tag}`);
    const chan = await channelWith(srv.port, owner, zed);
    for (let i = 0; i < 50 && redisCli(addr, 'KEYS', 'storm:gw:*') === ''; i++) await sleep(100);
    const o1 = await wsOpen(srv.port, owner.token);
    await o1.until(() => o1.queue.find((m) => m.op === 'hello'), 3000, 'hello');

    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    await sleep(300);
    const ack = await wsRequest(o1, { op: 'send', channel_id: chan, body: 'still here', nonce: 'k1', ref: 1 });
    assert.equal(ack.op, 'ack', JSON.stringify(ack));
    const z1 = await wsOpen(srv.port, zed.token);
    const on = await o1.until(() => presenceOf(o1, zed.id)[0], 3000, 'zed online without Redis');
    assert.equal(on.status, 'online');
    z1.ws.close(1000);
    await o1.until(() => presenceOf(o1, zed.id)[1], 3000, 'zed offline without Redis');

    /* Redis back: the gateway reconnects by itself and counts there again. */
    redis = start();
    const z2 = await (async () => {
      for (let i = 0; i < 80; i++) {
        await sleep(100);
        try { if (redisCli(addr, 'KEYS', 'storm:gw:*') !== '') break; } catch { /* not yet */ }
      }
      return wsOpen(srv.port, zed.token);
    })();
    await z2.until(() => z2.queue.find((m) => m.op === 'hello'), 3000, 'hello');
    let n = '';
    for (let i = 0; i < 40 && n !== '1'; i++) {
      await sleep(50);
      n = redisCli(addr, 'HLEN', `storm:presence:${zed.id}`);
    }
    assert.equal(n, '1', 'presence not written to Redis after it came back');
    z2.ws.close(1000);
    o1.ws.close(1000);
  } finally {
    await srv.stop();
    redis.kill('SIGKILL');
  }
});
