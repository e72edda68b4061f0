'use strict';
/*
 * broadcast.test.js — the `broadcast` op through the real binary
 * (docs/protocol.md, Broadcast): ephemeral data relayed to every connection
 * subscribed to the channel — the sender's own connection and other devices
 * included — as {op, channel_id, user_id, body}, with no ack, nothing
 * stored and no seq; non-members get not_found, bad fields bad_request,
 * and it costs a token of the connection's rate bucket.
 *
 * The bus path across gateways is not reachable yet (distributed mode is
 * not built): these tests drive one embedded process.
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  serverFixture,
  startServer,
  killStragglers,
  apiCall,
  newUser,
  wsOpen,
  wsRequest,
  wsUpgradeWithFrames,
  sleep,
} = require('./helpers');

const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000'];
const NO_WS_LIMIT = ['--ws-send-rate', '100000', '--ws-send-burst', '100000'];

const open = [];
/* Registered before the fixture so clients are gone before the server stops. */
after(async () => {
  for (const c of open) c.terminate();
  await sleep(100);
});

const fx = serverFixture([...FAST, ...NO_WS_LIMIT], { token: false });
before(fx.start);
afterEach(fx.check);
after(fx.finish);
after(() => {
  killStragglers();
});

let counter = 0;
const uname = (p) => `${p}${process.pid % 1000}c${++counter}`;
const J = (v) => JSON.stringify(v);

function expectStatus(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  return r.json;
}

async function createChannel(port, owner, priv = false) {
  const r = await apiCall(port, 'POST', '/channels', owner.token, { name: uname('bc'), private: priv });
  return expectStatus(r, 201, 'POST /channels').channel;
}

async function join(port, u, ch) {
  expectStatus(await apiCall(port, 'POST', `/channels/${ch.id}/join`, u.token), 200, `${u.username} joins ${ch.id}`);
}

/* A connected device of u, its hello consumed. */
async function device(port, u) {
  const c = await wsOpen(port, u.token);
  open.push(c);
  const h = await c.next(5000);
  assert.equal(h.op, 'hello', `first frame for ${u.username}: ${J(h)}`);
  return c;
}

const broadcasts = (c) => c.queue.filter((m) => m.op === 'broadcast');
/* What a client received besides presence (members coming online is not what these tests judge). */
const stray = (c) => c.queue.filter((m) => m.op !== 'presence');

/* Waits for n broadcast events on c and takes them off its queue. */
async function takeBroadcasts(c, n, what) {
  await c.until(() => broadcasts(c).length >= n, 3000, `${n} broadcast(s) ${what}`);
  const got = broadcasts(c).slice(0, n);
  c.queue = c.queue.filter((m) => !got.includes(m));
  return got;
}

async function channelState(port, u, ch) {
  const h = expectStatus(await apiCall(port, 'GET', `/channels/${ch.id}/messages?after=0&limit=100`, u.token), 200, 'history');
  const c = expectStatus(await apiCall(port, 'GET', `/channels/${ch.id}`, u.token), 200, 'GET channel').channel;
  return { messages: h.messages, last_seq: c.last_seq };
}

test('members receive it — the sender, its other device, other members — exactly once, in order; no ack; nothing stored', async () => {
  const port = fx.port;
  const ann = await newUser(port, uname('ann'));
  const ben = await newUser(port, uname('ben'));
  const cid = await newUser(port, uname('cid'));
  const ch = await createChannel(port, ann);
  const elsewhere = await createChannel(port, cid);
  await join(port, ben, ch);
  const a1 = await device(port, ann);
  const a2 = await device(port, ann);
  const b1 = await device(port, ben);
  const c1 = await device(port, cid); /* not in ch */
  const before = await channelState(port, ann, ch);

  /* Quotes, backslashes, control characters, non-ASCII, U+2028: all must survive the encoding. */
  const body = 'héllo "q" \\ \n\t\u0001\u001f 🌩 \u2028 </script>';
  a1.send({ op: 'broadcast', channel_id: ch.id, body, ref: 'b1' });
  const want = { op: 'broadcast', channel_id: ch.id, user_id: ann.id, body };
  for (const [who, c] of [['the sender', a1], ['the sender\'s other device', a2], ['another member', b1]]) {
    assert.deepEqual(await takeBroadcasts(c, 1, `at ${who}`), [want], who);
  }

  /* One sender's broadcasts keep their order; another member's reach the first. */
  for (let i = 0; i < 50; i++) b1.send({ op: 'broadcast', channel_id: ch.id, body: `n${i}` });
  const order = Array.from({ length: 50 }, (_, i) => `n${i}`);
  for (const c of [a1, a2, b1]) {
    const got = await takeBroadcasts(c, 50, 'from ben');
    assert.deepEqual(got.map((m) => m.body), order, 'order of one sender');
    assert.ok(got.every((m) => m.user_id === ben.id && m.channel_id === ch.id), J(got[0]));
  }
  /* Traffic of another channel stays there. */
  c1.send({ op: 'broadcast', channel_id: elsewhere.id, body: 'other', ref: 'c' });
  assert.deepEqual(await takeBroadcasts(c1, 1, 'in the other channel'), [{ op: 'broadcast', channel_id: elsewhere.id, user_id: cid.id, body: 'other' }]);

  await sleep(200);
  for (const c of [a1, a2, b1, c1]) assert.deepEqual(stray(c), [], `unexpected frames (an ack, a duplicate, a leak): ${J(c.queue)}`);
  assert.deepEqual(await channelState(port, ann, ch), before, 'a broadcast was stored or took a seq');
});

test('a broadcast sent before hello is handled after it', async () => {
  const port = fx.port;
  const dee = await newUser(port, uname('dee'));
  const ch = await createChannel(port, dee);
  const watcher = await device(port, dee);
  const msg = { op: 'broadcast', channel_id: ch.id, body: 'early' };
  const { frames, sock } = await wsUpgradeWithFrames(port, dee.token, [msg], (f) => f.length >= 2);
  sock.destroy();
  assert.equal(frames[0] && frames[0].op, 'hello', J(frames));
  assert.deepEqual(frames[1], { op: 'broadcast', channel_id: ch.id, user_id: dee.id, body: 'early' }, J(frames));
  assert.deepEqual(await takeBroadcasts(watcher, 1, 'at the other device'), [frames[1]]);
});

test('not a member → not_found with ref and channel_id, nothing delivered; membership follows joins and leaves live', async () => {
  const port = fx.port;
  const eve = await newUser(port, uname('eve'));
  const fay = await newUser(port, uname('fay'));
  const pub = await createChannel(port, eve);
  const priv = await createChannel(port, eve, true);
  const e1 = await device(port, eve);
  const f1 = await device(port, fay);

  for (const [chan, what] of [[pub.id, 'a public channel fay is not in'], [priv.id, 'a private channel'], [9_000_000_000, 'no such channel']]) {
    const err = await wsRequest(f1, { op: 'broadcast', channel_id: chan, body: 'x', ref: `nf${chan}` });
    assert.deepEqual([err.op, err.code, err.ref, err.channel_id], ['error', 'not_found', `nf${chan}`, chan], `${what}: ${J(err)}`);
  }
  /* Joining over HTTP subscribes the open connection: broadcast works without a reconnect. */
  await join(port, fay, pub);
  await f1.until(() => f1.queue.some((m) => m.op === 'channel_joined'), 3000, 'channel_joined');
  f1.send({ op: 'broadcast', channel_id: pub.id, body: 'joined' });
  const want = { op: 'broadcast', channel_id: pub.id, user_id: fay.id, body: 'joined' };
  assert.deepEqual(await takeBroadcasts(e1, 1, 'from the new member'), [want]);
  assert.deepEqual(await takeBroadcasts(f1, 1, 'back at the sender'), [want]);
  /* Leaving unsubscribes it: not_found again, and nothing reaches it any more. */
  expectStatus(await apiCall(port, 'POST', `/channels/${pub.id}/leave`, fay.token), 200, 'leave');
  await f1.until(() => f1.queue.some((m) => m.op === 'channel_left'), 3000, 'channel_left');
  const err = await wsRequest(f1, { op: 'broadcast', channel_id: pub.id, body: 'gone', ref: 'left' });
  assert.deepEqual([err.code, err.channel_id], ['not_found', pub.id], J(err));
  e1.send({ op: 'broadcast', channel_id: pub.id, body: 'after fay left' });
  await takeBroadcasts(e1, 1, 'at eve');
  await sleep(200);
  assert.deepEqual(broadcasts(f1), [], `a non-member received a broadcast: ${J(f1.queue)}`);
  assert.deepEqual(broadcasts(e1), [], `eve received a refused broadcast: ${J(e1.queue)}`);
});

test('bad fields → bad_request with the ref; 4,000 characters pass, 4,001 do not; nothing is delivered for a refused one', async () => {
  const port = fx.port;
  const gus = await newUser(port, uname('gus'));
  const hal = await newUser(port, uname('hal'));
  const ch = await createChannel(port, gus);
  await join(port, hal, ch);
  const g1 = await device(port, gus);
  const h1 = await device(port, hal);

  const bad = [
    { body: 'x' },
    { channel_id: String(ch.id), body: 'x' },
    { channel_id: 0, body: 'x' },
    { channel_id: -ch.id, body: 'x' },
    { channel_id: ch.id + 0.5, body: 'x' },
    { channel_id: null, body: 'x' },
    { channel_id: ch.id },
    { channel_id: ch.id, body: null },
    { channel_id: ch.id, body: 5 },
    { channel_id: ch.id, body: ['x'] },
    { channel_id: ch.id, body: { t: 'x' } },
    { channel_id: ch.id, body: '' },
    { channel_id: ch.id, body: 'x'.repeat(4001) },
    { channel_id: ch.id, body: '🌩'.repeat(4001) },
    { channel_id: ch.id, body: 'é'.repeat(4001) },
  ];
  for (const [i, fields] of bad.entries()) {
    const ref = { n: i };
    const err = await wsRequest(g1, { op: 'broadcast', ...fields, ref });
    assert.deepEqual([err.op, err.code, err.ref], ['error', 'bad_request', ref], `${J(fields).slice(0, 80)}: ${J(err).slice(0, 200)}`);
    assert.equal(typeof err.message, 'string', J(err));
  }
  /* channel_id 1.0 is a JSON real, not an integer (jansson keeps the distinction). */
  g1.send(`{"op":"broadcast","channel_id":${ch.id}.0,"body":"x","ref":"real"}`);
  const real = await g1.until(() => g1.queue.find((m) => m.ref === 'real'), 3000, 'answer to a real channel_id');
  assert.equal(real.code, 'bad_request', J(real));
  g1.queue.splice(g1.queue.indexOf(real), 1);

  /* At the limit, counted in characters: ASCII, 2-byte, 4-byte (two UTF-16 units each), and
   * control characters, which the event escapes to six bytes each. */
  const ok = ['x'.repeat(4000), 'é'.repeat(4000), '🌩'.repeat(4000), '\u0001'.repeat(4000), 'y'];
  for (const body of ok) g1.send({ op: 'broadcast', channel_id: ch.id, body });
  for (const c of [g1, h1]) {
    const got = await takeBroadcasts(c, ok.length, 'at the limit');
    assert.deepEqual(got.map((m) => m.body), ok, 'bodies at the limit');
  }
  await sleep(200);
  assert.deepEqual(stray(h1), [], `hal received something for a refused broadcast: ${J(h1.queue).slice(0, 300)}`);
  assert.deepEqual(stray(g1), [], `gus received more: ${J(g1.queue).slice(0, 300)}`);
  assert.equal(g1.closeInfo, null, 'bad fields closed the connection');
});

test('rate limit: each broadcast takes a token; over the bucket → rate_limited (with ref) and not delivered; the connection stays open', async () => {
  /* --ws-send-rate 1 --ws-send-burst 5: this server only. */
  const srv = await startServer([...FAST, '--ws-send-rate', '1', '--ws-send-burst', '5'], { token: false });
  try {
    const port = srv.port;
    const ivy = await newUser(port, uname('ivy'));
    const jon = await newUser(port, uname('jon'));
    const ch = await createChannel(port, ivy);
    await join(port, jon, ch);
    const i1 = await device(port, ivy);
    const j1 = await device(port, jon);
    /* A non-member's refusal costs no token: these 10 must not drain ivy's bucket... */
    const other = await createChannel(port, jon);
    for (let k = 0; k < 10; k++) {
      const e = await wsRequest(i1, { op: 'broadcast', channel_id: other.id, body: 'x', ref: `o${k}` });
      assert.equal(e.code, 'not_found', J(e));
    }
    /* ...so the burst of 5 is still whole. */
    const N = 20;
    for (let k = 0; k < N; k++) i1.send({ op: 'broadcast', channel_id: ch.id, body: `r${k}`, ref: k });
    await i1.until(() => broadcasts(i1).length + i1.queue.filter((m) => m.op === 'error').length >= N, 5000, `${N} outcomes`);
    const delivered = broadcasts(i1).map((m) => m.body);
    const errors = i1.queue.filter((m) => m.op === 'error');
    /* The bucket refills 1 per second: the burst, perhaps one more. */
    assert.ok(delivered.length >= 5 && delivered.length <= 6, `delivered ${J(delivered)}`);
    assert.deepEqual(delivered.slice(0, 5), ['r0', 'r1', 'r2', 'r3', 'r4'], 'the burst goes first, in order');
    assert.equal(errors.length, N - delivered.length, J(errors));
    assert.ok(errors.every((e) => e.code === 'rate_limited' && Number.isInteger(e.ref) && e.ref >= 5), J(errors));
    /* The other member got exactly what the sender got back. */
    const atJon = await takeBroadcasts(j1, delivered.length, 'at jon');
    assert.deepEqual(atJon.map((m) => m.body), delivered);
    /* The bucket refills: a second later a broadcast passes again. */
    await sleep(1100);
    i1.queue = [];
    i1.send({ op: 'broadcast', channel_id: ch.id, body: 'later', ref: 'later' });
    assert.deepEqual((await takeBroadcasts(i1, 1, 'after the refill'))[0].body, 'later');
    assert.equal(i1.closeInfo, null, 'rate limiting closed the connection');
    for (const c of [i1, j1]) c.terminate();
  } finally {
    await srv.stop();
  }
});

/* 300 connections get 40 back-to-back broadcasts each: all, in order,
 * once. A 1 us slice stops every prepare after 32 connections, so
 * broadcasts keep arriving while most queues are half written; with
 * --write-duty 50 the loop also pauses after every 1 ms of such writing
 * (src/net/outq.c). */
async function sliced(extra) {
  const srv = await startServer([...FAST, ...NO_WS_LIMIT, '--write-slice-us', '1', ...extra], { token: false });
  const devs = [];
  try {
    const port = srv.port;
    const kim = await newUser(port, uname('kim'));
    const lea = await newUser(port, uname('lea'));
    const ch = await createChannel(port, kim);
    await join(port, lea, ch);
    const k1 = await device(port, kim);
    devs.push(k1);
    for (let i = 0; i < 299; i++) devs.push(await device(port, lea));
    const N = 40;
    for (let k = 0; k < N; k++) k1.send({ op: 'broadcast', channel_id: ch.id, body: `s${k}` });
    const want = Array.from({ length: N }, (_, k) => `s${k}`);
    for (const [i, c] of devs.entries()) {
      const got = await takeBroadcasts(c, N, `at connection ${i}`);
      assert.deepEqual(got.map((m) => m.body), want, `connection ${i}`);
    }
    await sleep(200);
    for (const [i, c] of devs.entries()) {
      assert.deepEqual(broadcasts(c), [], `connection ${i} got more`);
      assert.equal(c.closeInfo, null, `connection ${i} closed`);
    }
  } finally {
    for (const c of devs) c.terminate();
    await srv.stop();
  }
}

test('written in slices (--write-slice-us 1, --write-duty 100): 300 connections get every broadcast, in order, once', () =>
  sliced(['--write-duty', '100']));

test('written in slices with pauses (--write-slice-us 1, --write-duty 50): 300 connections get every broadcast, in order, once', () =>
  sliced(['--write-duty', '50']));
