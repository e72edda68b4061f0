'use strict';
/*
 * messaging_durability.test.js — the guarantees of issue 4 that involve
 * time and failure, through the real binary: one order for everybody under
 * concurrent senders (seqs 1..2000, no gap, no duplicate), recovery after a
 * reconnect with `resume` (exactly the missed messages, then `resumed`, then
 * live; and with live traffic racing the replay), truncation at
 * --resume-limit with the rest fetched over HTTP, and durability: every
 * acked message survives `kill -9` and a restart on the same data
 * directory (the killed server's exit is the point, not a failure).
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { CLUSTER,
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
const NO_WS_LIMIT = ['--ws-send-rate', '1000000', '--ws-send-burst', '1000000'];
const ARGS = [...FAST, ...NO_WS_LIMIT];

const open = [];
after(async () => {
  for (const c of open) c.terminate();
  await sleep(100);
});

const fx = serverFixture(ARGS, { token: false });
before(fx.start);
afterEach(fx.check);
after(fx.finish);
/* Servers a test started itself, left running by a failure. */
after(() => {
  killStragglers();
});

/* ------------------------------------------------------------ helpers */

let counter = 0;
const uname = (p) => `${p}${process.pid % 1000}d${++counter}`;
const J = (v) => JSON.stringify(v);

function expectStatus(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  return r.json;
}

async function createChannel(port, owner, name) {
  const r = await apiCall(port, 'POST', '/channels', owner.token, { name });
  return expectStatus(r, 201, `POST /channels ${name}`).channel;
}

async function join(port, u, ch) {
  expectStatus(await apiCall(port, 'POST', `/channels/${ch.id}/join`, u.token), 200, `${u.username} joins`);
}

/*
 * A WebSocket of u that sorts what it receives as it arrives (the test
 * counts thousands of frames: no rescans of the whole queue): `frames` (every
 * JSON frame in order), `msgs` (message events), `acks`, `errors`.
 * The WsClient queue keeps its copy (wsRequest takes replies from it).
 */
async function tracked(port, u, query = '') {
  const c = await wsOpen(port, u.token, query);
  open.push(c);
  c.frames = [];
  c.msgs = [];
  c.acks = [];
  c.errors = [];
  const sort = (v) => {
    c.frames.push(v);
    if (v.op === 'message') c.msgs.push(v);
    else if (v.op === 'ack') c.acks.push(v);
    else if (v.op === 'error') c.errors.push(v);
  };
  /* Frames that came with the 101 were queued before this listener existed. */
  for (const v of c.queue) sort(v);
  c.ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let v;
    try {
      v = JSON.parse(data.toString('utf8'));
    } catch {
      v = { __raw: data.toString('utf8') };
    }
    sort(v);
    c.poke(); /* WsClient's own listener ran first, before this frame was sorted */
  });
  c.user = u;
  return c;
}

async function waitHello(c) {
  await c.until(() => c.frames.length > 0 || c.closeInfo, 5000, 'hello');
  assert.equal(c.frames[0] && c.frames[0].op, 'hello', `first frame: ${J(c.frames[0])} close ${J(c.closeInfo)}`);
  return c.frames[0];
}

/* Waits for cond() (cheap: it runs on every frame). */
function waitFor(c, cond, ms, what) {
  return c.until(() => cond() || (c.closeInfo && { closed: true }), ms, what).then((v) => {
    if (v && v.closed && !cond()) throw new Error(`${what}: connection closed ${J(c.closeInfo)}; last frames ${J(c.frames.slice(-5))}`);
  });
}

/* Sends n messages without waiting between them; resolves when all n are acked (errors fail). */
async function blast(c, chId, n, tag) {
  const start = c.acks.length;
  for (let i = 0; i < n; i++) c.send({ op: 'send', channel_id: chId, body: `${tag} body ${i}`, nonce: `${tag}-${i}`, ref: `${tag}-${i}` });
  await waitFor(c, () => c.acks.length - start >= n || c.errors.length > 0, 20000, `${n} acks for ${tag}`);
  assert.deepEqual(c.errors, [], `errors while sending ${tag}`);
}

/* Every message of a channel over HTTP, page by page (after=, limit). */
async function fullHistory(port, u, chId, after = 0, limit = 100) {
  const out = [];
  for (let guard = 0; guard < 1000; guard++) {
    const r = await apiCall(port, 'GET', `/channels/${chId}/messages?after=${after}&limit=${limit}`, u.token);
    const j = expectStatus(r, 200, `history after=${after}`);
    assert.ok(j.messages.length <= limit, `page over the limit: ${j.messages.length}`);
    out.push(...j.messages);
    if (!j.more) return out;
    assert.ok(j.messages.length > 0, `more:true with an empty page after ${after}`);
    after = j.messages[j.messages.length - 1].seq;
  }
  throw new Error('history never ended');
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/* ------------------------------------------------------------ tests */

test('concurrency: 20 clients × 100 sends into one channel → one order for all, seqs exactly 1..2000, history agrees', async () => {
  const port = fx.port;
  const users = [];
  for (let i = 0; i < 20; i++) users.push(await newUser(port, uname('cc')));
  const ch = await createChannel(port, users[0], uname('busy'));
  for (const u of users.slice(1)) await join(port, u, ch);
  const clients = [];
  for (const u of users) clients.push(await tracked(port, u));
  for (const c of clients) await waitHello(c);

  const PER = 100;
  const TOTAL = PER * clients.length;
  /* Everybody fires at once. */
  clients.forEach((c, k) => {
    for (let i = 0; i < PER; i++) c.send({ op: 'send', channel_id: ch.id, body: `c${k} m${i}`, nonce: `cc-${k}-${i}`, ref: i });
  });
  for (const c of clients) {
    await waitFor(c, () => (c.msgs.length >= TOTAL && c.acks.length >= PER) || c.errors.length > 0, 30000, `${TOTAL} events and ${PER} acks`);
  }
  await sleep(300);

  const order0 = clients[0].msgs.map((e) => `${e.message.seq}:${e.message.id}`);
  clients.forEach((c, k) => {
    assert.deepEqual(c.errors, [], `client ${k} errors`);
    assert.equal(c.msgs.length, TOTAL, `client ${k}: ${c.msgs.length} message events (duplicates?)`);
    const seqs = c.msgs.map((e) => e.message.seq);
    const bad = seqs.findIndex((s, i) => s !== i + 1);
    assert.equal(bad, -1, `client ${k}: seq at position ${bad} is ${seqs[bad]} (want ${bad + 1}); around: ${J(seqs.slice(Math.max(0, bad - 3), bad + 3))}`);
    assert.ok(c.msgs.every((e) => e.channel_id === ch.id));
    const order = c.msgs.map((e) => `${e.message.seq}:${e.message.id}`);
    const diff = order.findIndex((x, i) => x !== order0[i]);
    assert.equal(diff, -1, `client ${k} disagrees with client 0 at ${diff}: ${order[diff]} vs ${order0[diff]}`);
    /* Its own acks: one per send, matching the delivered message with that nonce, in send order. */
    assert.equal(c.acks.length, PER, `client ${k}: ${c.acks.length} acks`);
    const byNonce = new Map(c.msgs.map((e) => [e.message.nonce, e.message]));
    let last = 0;
    for (const a of c.acks) {
      const i = a.ref;
      assert.equal(a.nonce, `cc-${k}-${i}`, J(a));
      const m = byNonce.get(a.nonce);
      assert.ok(m, `ack without a delivered message: ${J(a)}`);
      assert.deepEqual([a.id, a.seq, a.duplicate], [m.id, m.seq, false], `ack ${J(a)} vs message ${J(m)}`);
      assert.equal(m.body, `c${k} m${i}`);
      assert.equal(m.author_id, c.user.id);
      assert.ok(m.seq > last, `client ${k}: its sends were stored out of order (${J(a)} after seq ${last})`);
      last = m.seq;
    }
  });
  const ids = new Set(clients[0].msgs.map((e) => e.message.id));
  assert.equal(ids.size, TOTAL, 'duplicate message ids');

  const hist = await fullHistory(port, users[5], ch.id);
  assert.deepEqual(hist.map((m) => `${m.seq}:${m.id}`), order0, 'HTTP history differs from the delivered order');
  /* The history op pages the same way. */
  const c0 = clients[3];
  const pg = await wsRequest(c0, { op: 'history', channel_id: ch.id, after: 1990, limit: 5, ref: 'pg1' });
  assert.deepEqual([pg.op, pg.channel_id, pg.messages.map((m) => m.seq), pg.more], ['history', ch.id, range(1991, 1995), true], J(pg).slice(0, 300));
  assert.deepEqual(pg.messages.map((m) => `${m.seq}:${m.id}`), order0.slice(1990, 1995));
  const pg2 = await wsRequest(c0, { op: 'history', channel_id: ch.id, before: 3, limit: 5, ref: 'pg2' });
  assert.deepEqual([pg2.messages.map((m) => m.seq), pg2.more], [[1, 2], false], J(pg2).slice(0, 300));
  const pg3 = await wsRequest(c0, { op: 'history', channel_id: ch.id, after: 1995, ref: 'pg3' });
  assert.deepEqual([pg3.messages.map((m) => m.seq), pg3.more], [range(1996, 2000), false], J(pg3).slice(0, 300));
  const latest = expectStatus(await apiCall(port, 'GET', `/channels/${ch.id}/messages?limit=100`, users[0].token), 200, 'latest page');
  assert.deepEqual(latest.messages.map((m) => m.seq), range(TOTAL - 99, TOTAL), 'latest page');
  assert.equal(latest.more, true);
  const before = expectStatus(await apiCall(port, 'GET', `/channels/${ch.id}/messages?before=101&limit=100`, users[0].token), 200, 'before page');
  assert.deepEqual(before.messages.map((m) => m.seq), range(1, 100), 'before=101 page');
  assert.equal(before.more, false, J(before.more));
  for (const c of clients) c.ws.close(1000);
});

test('recovery: disconnect, 50 sent meanwhile, reconnect with ?resume=1 + resume → exactly those 50 in order, resumed, then live', async () => {
  const port = fx.port;
  const rita = await newUser(port, uname('rita'));
  const sam = await newUser(port, uname('sam'));
  const ch = await createChannel(port, sam, uname('rec'));
  const quiet = await createChannel(port, sam, uname('quiet'));
  const foreign = await createChannel(port, sam, uname('foreign'));
  await join(port, rita, ch);
  await join(port, rita, quiet);
  const s1 = await tracked(port, sam);
  await waitHello(s1);
  const r1 = await tracked(port, rita);
  await waitHello(r1);
  await blast(s1, ch.id, 3, 'pre');
  await blast(s1, quiet.id, 2, 'q');
  await waitFor(r1, () => r1.msgs.length >= 5, 5000, '5 messages');
  const lastSeq = Math.max(...r1.msgs.filter((e) => e.channel_id === ch.id).map((e) => e.message.seq));
  assert.equal(lastSeq, 3);
  r1.ws.close(1000);
  await r1.waitClose(3000);

  await blast(s1, ch.id, 50, 'gap');
  const r2 = await tracked(port, rita, 'resume=1');
  /* With resume=1 the server waits for our first message before hello. */
  r2.send({ op: 'resume', channels: { [ch.id]: lastSeq, [quiet.id]: 2, [foreign.id]: 0 }, ref: 'res' });
  const done = () => r2.frames.filter((f) => f.op === 'resumed' || f.op === 'resume_truncated');
  await waitFor(r2, () => done().length >= 2, 10000, 'resumed for both channels');
  assert.equal(r2.frames[0].op, 'hello', `first frame ${J(r2.frames[0])}`);
  const res = done().find((f) => f.channel_id === ch.id);
  assert.deepEqual(res, { op: 'resumed', ref: 'res', channel_id: ch.id, last_seq: 53 }, J(done()));
  const resQuiet = done().find((f) => f.channel_id === quiet.id);
  assert.deepEqual(resQuiet, { op: 'resumed', ref: 'res', channel_id: quiet.id, last_seq: 2 }, J(done()));
  /* A channel that is not ours is refused alone; the others proceed. */
  assert.deepEqual(
    r2.errors.map((e) => [e.code, e.channel_id, e.ref]),
    [['not_found', foreign.id, 'res']],
    `errors: ${J(r2.errors)}`
  );
  const idxRes = r2.frames.indexOf(res);
  const replayed = r2.frames.slice(0, idxRes).filter((f) => f.op === 'message');
  assert.deepEqual(replayed.map((e) => e.channel_id), replayed.map(() => ch.id), 'replay of another channel');
  assert.deepEqual(replayed.map((e) => e.message.seq), range(4, 53), 'replayed seqs');
  assert.deepEqual(replayed.map((e) => e.message.nonce), range(0, 49).map((i) => `gap-${i}`));
  assert.deepEqual(replayed.map((e) => e.message.body), range(0, 49).map((i) => `gap body ${i}`));

  /* Live delivery has taken over. */
  await blast(s1, ch.id, 2, 'live');
  await waitFor(r2, () => r2.msgs.length >= 52, 5000, 'live messages after resumed');
  await sleep(300);
  const all = r2.msgs.map((e) => e.message.seq);
  assert.deepEqual(all, range(4, 55), `every message event of the session (duplicates or gaps?): ${J(all)}`);
  assert.ok(r2.frames.indexOf(r2.msgs[50]) > idxRes, 'live message before resumed');
  s1.ws.close(1000);
  r2.ws.close(1000);
});

test('recovery races live traffic: sends continue through the reconnect → seqs contiguous, no duplicate, resumed at the boundary', async (t) => {
  const port = fx.port;
  const ron = await newUser(port, uname('ron'));
  const sue = await newUser(port, uname('sue'));
  const ch = await createChannel(port, sue, uname('race'));
  await join(port, ron, ch);
  const s1 = await tracked(port, sue);
  await waitHello(s1);
  const r1 = await tracked(port, ron);
  await waitHello(r1);
  await blast(s1, ch.id, 5, 'warm');
  await waitFor(r1, () => r1.msgs.length >= 5, 5000, '5 messages');
  r1.terminate();
  await r1.waitClose(3000);

  /* 300 messages, 3 every few ms, while the client reconnects in the middle. */
  const N = 300;
  let sent = 0;
  const sender = (async () => {
    while (sent < N) {
      for (let k = 0; k < 3 && sent < N; k++, sent++) s1.send({ op: 'send', channel_id: ch.id, body: `race ${sent}`, nonce: `race-${sent}`, ref: `race-${sent}` });
      await sleep(2);
    }
  })();
  await waitFor(s1, () => s1.acks.length >= 5 + 60, 10000, '60 acks before the reconnect');
  const r2 = await tracked(port, ron, 'resume=1');
  r2.send({ op: 'resume', channels: { [ch.id]: 5 }, ref: 'race' });
  await sender;
  await waitFor(s1, () => s1.acks.length >= 5 + N || s1.errors.length > 0, 20000, 'all acks');
  assert.deepEqual(s1.errors, []);
  await waitFor(r2, () => r2.msgs.length >= N, 10000, `${N} message events`);
  await sleep(300);

  assert.equal(r2.frames[0].op, 'hello', J(r2.frames[0]));
  const seqs = r2.msgs.map((e) => e.message.seq);
  const bad = seqs.findIndex((s, i) => s !== 6 + i);
  assert.equal(bad, -1, `seq at ${bad} is ${seqs[bad]}, want ${6 + bad}: ${J(seqs.slice(Math.max(0, bad - 5), bad + 5))}`);
  assert.equal(seqs.length, N, `${seqs.length} events for ${N} messages`);
  const ends = r2.frames.filter((f) => f.op === 'resumed' || f.op === 'resume_truncated');
  assert.equal(ends.length, 1, J(ends));
  assert.equal(ends[0].op, 'resumed', J(ends));
  const at = r2.frames.indexOf(ends[0]);
  const beforeRes = r2.frames.slice(0, at).filter((f) => f.op === 'message').map((e) => e.message.seq);
  const afterRes = r2.frames.slice(at).filter((f) => f.op === 'message').map((e) => e.message.seq);
  assert.ok(beforeRes.length >= 60 - 5, `only ${beforeRes.length} messages before resumed`);
  assert.equal(beforeRes[beforeRes.length - 1], ends[0].last_seq, `resumed.last_seq ${ends[0].last_seq} is not the last message delivered before it (${beforeRes[beforeRes.length - 1]})`);
  assert.ok(afterRes.every((s) => s > ends[0].last_seq), 'a message at or below last_seq after resumed');
  assert.deepEqual(r2.errors, []);
  t.diagnostic(`${beforeRes.length} messages before resumed (last_seq ${ends[0].last_seq}), ${afterRes.length} live after it`);
  s1.ws.close(1000);
  r2.ws.close(1000);
});

test('truncation (--resume-limit 10): a gap of exactly 10 → resumed; a gap of 30 → 10 replayed, resume_truncated, the rest over HTTP, then live', async () => {
  const srv = await startServer([...ARGS, '--resume-limit', '10'], { token: false });
  try {
    const port = srv.port;
    const ria = await newUser(port, uname('ria'));
    const sid = await newUser(port, uname('sid'));
    const ch = await createChannel(port, sid, uname('trunc'));
    await join(port, ria, ch);
    const s1 = await tracked(port, sid);
    await waitHello(s1);
    await blast(s1, ch.id, 2, 'pre');

    /* Exactly the limit missing: not truncated. */
    await blast(s1, ch.id, 10, 'ten');
    const r1 = await tracked(port, ria, 'resume=1');
    r1.send({ op: 'resume', channels: { [ch.id]: 2 }, ref: 't1' });
    await waitFor(r1, () => r1.frames.some((f) => f.op === 'resumed' || f.op === 'resume_truncated'), 5000, 'end of replay');
    const end1 = r1.frames.find((f) => f.op === 'resumed' || f.op === 'resume_truncated');
    assert.deepEqual(end1, { op: 'resumed', ref: 't1', channel_id: ch.id, last_seq: 12 }, 'gap == --resume-limit');
    assert.deepEqual(r1.msgs.map((e) => e.message.seq), range(3, 12));
    r1.ws.close(1000);
    await r1.waitClose(3000);

    /* 30 missing: 10 replayed then resume_truncated. */
    await blast(s1, ch.id, 30, 'thirty');
    const r2 = await tracked(port, ria, 'resume=1');
    r2.send({ op: 'resume', channels: { [ch.id]: 12 }, ref: 't2' });
    await waitFor(r2, () => r2.frames.some((f) => f.op === 'resumed' || f.op === 'resume_truncated'), 5000, 'end of replay');
    assert.equal(r2.frames[0].op, 'hello', J(r2.frames[0]));
    const end2 = r2.frames.find((f) => f.op === 'resumed' || f.op === 'resume_truncated');
    assert.deepEqual(end2, { op: 'resume_truncated', ref: 't2', channel_id: ch.id, last_seq: 22 }, J(r2.frames.map((f) => f.op)));
    await sleep(200);
    assert.deepEqual(r2.msgs.map((e) => e.message.seq), range(13, 22), 'replayed before/after truncation');

    /* The client fetches the rest over HTTP, in pages. */
    const rest = await fullHistory(port, ria, ch.id, end2.last_seq, 7);
    assert.deepEqual(rest.map((m) => m.seq), range(23, 42));
    assert.deepEqual(rest.map((m) => m.nonce), range(10, 29).map((i) => `thirty-${i}`));

    /* Live delivery continues. */
    await blast(s1, ch.id, 1, 'after');
    await waitFor(r2, () => r2.msgs.length >= 11, 5000, 'a live message after resume_truncated');
    await sleep(200);
    assert.deepEqual(r2.msgs.map((e) => e.message.seq), [...range(13, 22), 43]);
    s1.ws.close(1000);
    r2.ws.close(1000);
    await sleep(100);
  } finally {
    await srv.stop();
  }
});

/* Starts a server on dataDir (kept between restarts). */
const serveOn = (dataDir) => startServer(ARGS, { token: false, dataDir });

test('durability: 200 messages acked over WebSocket, kill -9, restart on the same data → every acked message is there with its seq', { skip: CLUSTER && 'restarts one process on its data directory (cluster_faults.test.js kills replicas)' }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-bb-kill-'));
  let srv = await serveOn(dataDir);
  try {
    const port = srv.port;
    const ada = await newUser(port, uname('ada'));
    const bea = await newUser(port, uname('bea'));
    const ch = await createChannel(port, ada, uname('durable'));
    await join(port, bea, ch);
    const a = await tracked(port, ada);
    const b = await tracked(port, bea);
    await waitHello(a);
    await waitHello(b);
    await Promise.all([blast(a, ch.id, 100, 'ka'), blast(b, ch.id, 100, 'kb')]);
    /* The very moment the last ack is in: no graceful anything. */
    const k = await srv.terminate('SIGKILL', 3000);
    assert.equal(k.signal, 'SIGKILL', J({ code: k.code, signal: k.signal }));
    await srv.stop(); /* sanitizer check only: the test killed it on purpose */
    const acks = [...a.acks, ...b.acks];
    assert.equal(acks.length, 200);
    assert.deepEqual(acks.map((x) => x.seq).sort((x, y) => x - y), range(1, 200), 'acked seqs');

    srv = await serveOn(dataDir);
    const hist = await fullHistory(srv.port, ada, ch.id);
    const bySeq = new Map(hist.map((m) => [m.seq, m]));
    for (const x of acks) {
      const m = bySeq.get(x.seq);
      assert.ok(m, `acked ${J(x)} is missing after kill -9`);
      const tag = x.nonce.replace(/-\d+$/, '');
      const i = x.nonce.slice(tag.length + 1);
      assert.deepEqual([m.id, m.nonce, m.body], [x.id, x.nonce, `${tag} body ${i}`], `seq ${x.seq} after the restart`);
    }
    assert.deepEqual(hist.map((m) => m.seq), range(1, 200), 'history after the restart');
    /* The nonce index survived too, and numbering continues. */
    const a2 = await tracked(srv.port, ada);
    await waitHello(a2);
    const dup = await wsRequest(a2, { op: 'send', channel_id: ch.id, body: 'ka body 7', nonce: 'ka-7', ref: 'd' }, 5000);
    const orig = acks.find((x) => x.nonce === 'ka-7');
    assert.deepEqual([dup.op, dup.id, dup.seq, dup.duplicate], ['ack', orig.id, orig.seq, true], J(dup));
    const next = await wsRequest(a2, { op: 'send', channel_id: ch.id, body: 'after restart', nonce: 'new-1', ref: 'n' }, 5000);
    assert.deepEqual([next.op, next.seq, next.duplicate], ['ack', 201, false], J(next));
    a2.ws.close(1000);
    await sleep(100);
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('durability under load: kill -9 while 4 clients are still sending → acked ⊆ stored, history gapless, retries land once', { skip: CLUSTER && 'restarts one process on its data directory (cluster_faults.test.js kills replicas)' }, async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-bb-kill-'));
  let srv = await serveOn(dataDir);
  try {
    const port = srv.port;
    const users = [];
    for (let i = 0; i < 4; i++) users.push(await newUser(port, uname('ld')));
    const ch = await createChannel(port, users[0], uname('load'));
    for (const u of users.slice(1)) await join(port, u, ch);
    const cs = [];
    for (const u of users) cs.push(await tracked(port, u));
    for (const c of cs) await waitHello(c);
    const PER = 400;
    cs.forEach((c, k) => {
      for (let i = 0; i < PER; i++) c.send({ op: 'send', channel_id: ch.id, body: `L${k} ${i}`, nonce: `L${k}-${i}`, ref: i });
    });
    const acked = () => cs.reduce((s, c) => s + c.acks.length, 0);
    await waitFor(cs[0], () => acked() >= 300, 20000, '300 acks');
    await srv.terminate('SIGKILL', 3000);
    await srv.stop();
    const acks = cs.flatMap((c) => c.acks.slice());
    for (const c of cs) assert.deepEqual(c.errors, [], 'errors before the kill');
    assert.ok(acks.length >= 300);

    srv = await serveOn(dataDir);
    const hist = await fullHistory(srv.port, users[1], ch.id);
    assert.deepEqual(hist.map((m) => m.seq), range(1, hist.length), 'history after the restart is not 1..n');
    t.diagnostic(`${acks.length} acked before kill -9, ${hist.length} stored after the restart`);
    const byNonce = new Map(hist.map((m) => [m.nonce, m]));
    assert.equal(byNonce.size, hist.length, 'a nonce stored twice');
    for (const x of acks) {
      const m = byNonce.get(x.nonce);
      assert.ok(m, `acked ${J(x)} lost by kill -9 (${hist.length} stored, ${acks.length} acked)`);
      assert.deepEqual([m.id, m.seq], [x.id, x.seq], `acked ${J(x)} stored as ${J(m)}`);
    }
    for (const m of hist) {
      const [, k, i] = /^L(\d)-(\d+)$/.exec(m.nonce) || [];
      assert.equal(m.body, `L${k} ${i}`, `stored message with a foreign body: ${J(m)}`);
    }
    /* Every sender retries what it has no ack for: stored ones come back as duplicates, the rest are new. */
    const cs2 = [];
    for (const u of users) cs2.push(await tracked(srv.port, u));
    for (const c of cs2) await waitHello(c);
    const retries = [];
    cs.forEach((c, k) => {
      const got = new Set(c.acks.map((x) => x.ref));
      for (let i = 0; i < PER; i++) {
        if (got.has(i)) continue;
        retries.push(
          wsRequest(cs2[k], { op: 'send', channel_id: ch.id, body: `L${k} ${i}`, nonce: `L${k}-${i}`, ref: i }, 20000).then((r) => {
            const stored = byNonce.get(`L${k}-${i}`);
            assert.equal(r.op, 'ack', J(r));
            if (stored) assert.deepEqual([r.id, r.seq, r.duplicate], [stored.id, stored.seq, true], `retry of a stored unacked message: ${J(r)}`);
            else assert.equal(r.duplicate, false, J(r));
          })
        );
      }
    });
    await Promise.all(retries);
    const final = await fullHistory(srv.port, users[2], ch.id);
    assert.equal(final.length, 4 * PER, 'one message per nonce after the retries');
    assert.deepEqual(final.map((m) => m.seq), range(1, 4 * PER));
    assert.equal(new Set(final.map((m) => m.nonce)).size, 4 * PER);
    for (const c of cs2) c.ws.close(1000);
    await sleep(100);
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('resume details: default limit 1,000 truncates a gap of 1,001; a second resume of a replaying channel → bad_request (with channel_id); resume before hello without ?resume=1; ?resume=1 with another first op', async () => {
  const port = fx.port;
  const tom = await newUser(port, uname('tom'));
  const uma = await newUser(port, uname('uma'));
  const ch = await createChannel(port, uma, uname('big'));
  await join(port, tom, ch);
  const s1 = await tracked(port, uma);
  await waitHello(s1);
  await blast(s1, ch.id, 1001, 'big');

  /* After hello (a resume that waits for hello is another path, tested below). */
  const r1 = await tracked(port, tom);
  await waitHello(r1);
  r1.send({ op: 'resume', channels: { [ch.id]: 0 }, ref: 'first' });
  r1.send({ op: 'resume', channels: { [ch.id]: 0 }, ref: 'second' });
  const ends = () => r1.frames.filter((f) => f.op === 'resumed' || f.op === 'resume_truncated');
  await waitFor(r1, () => ends().length >= 1, 10000, 'end of the replay');
  await sleep(300);
  assert.deepEqual(ends(), [{ op: 'resume_truncated', ref: 'first', channel_id: ch.id, last_seq: 1000 }], J(ends()));
  assert.deepEqual(r1.errors.map((e) => [e.code, e.ref, e.channel_id]), [['bad_request', 'second', ch.id]], J(r1.errors));
  const seqs = r1.msgs.map((e) => e.message.seq);
  assert.equal(seqs.length, 1000, `${seqs.length} replayed`);
  assert.equal(seqs.findIndex((s, i) => s !== i + 1), -1, 'replay order');
  r1.ws.close(1000);

  /* Without ?resume=1, a resume sent at once is kept until the subscriptions exist. */
  const r2 = await tracked(port, tom);
  r2.send({ op: 'resume', channels: { [ch.id]: 995 }, ref: 'early' });
  await waitFor(r2, () => r2.frames.some((f) => f.op === 'resumed'), 5000, 'resumed');
  await sleep(200);
  assert.equal(r2.frames[0].op, 'hello', J(r2.frames[0]));
  assert.deepEqual(r2.msgs.map((e) => e.message.seq), range(996, 1001));
  assert.deepEqual(r2.frames.find((f) => f.op === 'resumed'), { op: 'resumed', ref: 'early', channel_id: ch.id, last_seq: 1001 });
  r2.ws.close(1000);

  /* ?resume=1 and the first message is not a resume: hello first, then its answer. */
  const r3 = await tracked(port, tom, 'resume=1');
  await sleep(300);
  assert.deepEqual(r3.frames, [], 'hello sent before the first client message with ?resume=1');
  r3.send({ op: 'ping', ref: 'pp' });
  await waitFor(r3, () => r3.frames.some((f) => f.op === 'pong'), 3000, 'pong');
  assert.equal(r3.frames[0].op, 'hello', J(r3.frames));
  /* And the session is live afterwards. */
  await blast(s1, ch.id, 1, 'live');
  await waitFor(r3, () => r3.msgs.length >= 1, 3000, 'a live message');
  assert.equal(r3.msgs[0].message.seq, 1002);
  r3.ws.close(1000);
  s1.ws.close(1000);
});

/*
 * protocol.md: "a `resume` sent before `hello` is kept and applied the
 * moment the subscriptions exist"; conflicts are per channel ("a channel
 * already resuming → bad_request. The other channels of the same resume
 * proceed"). Two resumes of two different channels written together with
 * the upgrade request (so both are read before hello) must both replay.
 */
test('two resumes of different channels sent with the upgrade (before hello) → both channels replayed', async () => {
  const port = fx.port;
  const ivy = await newUser(port, uname('ivy'));
  const jon = await newUser(port, uname('jon'));
  const c1 = await createChannel(port, jon, uname('e1'));
  const c2 = await createChannel(port, jon, uname('e2'));
  for (const ch of [c1, c2]) {
    await join(port, ivy, ch);
    for (let i = 0; i < 3; i++) expectStatus(await apiCall(port, 'POST', `/channels/${ch.id}/messages`, jon.token, { body: `e${i}` }), 201, 'post');
  }
  for (const q of ['', '&resume=1']) {
    const { frames, sock } = await wsUpgradeWithFrames(port, ivy.token + q, [
      { op: 'resume', channels: { [c1.id]: 0 }, ref: 'one' },
      { op: 'resume', channels: { [c2.id]: 0 }, ref: 'two' },
    ], (fs) => fs.filter((f) => f.op === 'resumed' || f.op === 'resume_truncated' || f.op === 'error').length >= 2);
    sock.destroy();
    const ops = frames.map((f) => (f.op === 'message' ? `${f.channel_id}:${f.message.seq}` : J(f).slice(0, 120)));
    assert.deepEqual(frames.filter((f) => f.op === 'error'), [], `query "${q}": frames ${J(ops)}`);
    assert.equal(frames[0].op, 'hello', `query "${q}": frames ${J(ops)}`);
    for (const [ch, ref] of [[c1, 'one'], [c2, 'two']]) {
      assert.deepEqual(frames.filter((f) => f.op === 'message' && f.channel_id === ch.id).map((f) => f.message.seq), [1, 2, 3], `query "${q}": ${J(ops)}`);
      assert.deepEqual(frames.find((f) => f.op === 'resumed' && f.channel_id === ch.id), { op: 'resumed', ref, channel_id: ch.id, last_seq: 3 }, `query "${q}": ${J(ops)}`);
    }
  }
});
