'use strict';
/*
 * messaging.test.js — channels and real-time messaging through the real
 * binary (issue 4), as specified in docs/protocol.md and docs/subjects.md:
 * fan-out to exactly the right connections (three users, a public and a
 * private channel, a DM, several devices per user), joins and leaves
 * followed live, nonce idempotency (twice, across transports, across a
 * reconnect), edits and deletes (author only), typing, presence counting
 * devices, and read state synced across a user's devices with unread counts.
 *
 * Recovery, ordering under concurrency and crash durability are in
 * messaging_durability.test.js; malformed input and floods in
 * messaging_badinput.test.js. Every test makes its own users, so the shared
 * server's state from earlier tests does not matter.
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { serverFixture, apiCall, newUser, wsOpen, wsRequest, wsUpgradeWithFrames, sleep } = require('./helpers');

const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000'];
/* These tests send bursts on purpose; rate limiting has its own test (badinput file). */
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

/* ------------------------------------------------------------ helpers */

let counter = 0;
const uname = (p) => `${p}${process.pid % 1000}m${++counter}`;
const J = (v) => JSON.stringify(v);

async function user(prefix) {
  return newUser(fx.port, uname(prefix));
}

async function api(method, p, u, body) {
  return apiCall(fx.port, method, p, u && u.token, body);
}

/* Asserts an HTTP status (and error code); returns the parsed body. */
function expectStatus(r, status, code, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  if (code) assert.equal(r.json && r.json.error && r.json.error.code, code, `${what}: ${r.status} ${r.text}`);
  return r.json;
}

async function createChannel(owner, name, priv = false) {
  const r = await api('POST', '/channels', owner, { name, private: priv });
  return expectStatus(r, 201, null, `POST /channels ${name}`).channel;
}

async function join(u, ch) {
  expectStatus(await api('POST', `/channels/${ch.id}/join`, u), 200, null, `${u.username} joins ${ch.id}`);
}

/* A connected device of u, its hello consumed and kept in c.hello. */
async function device(u, query = '') {
  const c = await wsOpen(fx.port, u.token, query);
  open.push(c);
  const h = await c.next(5000);
  assert.equal(h.op, 'hello', `first frame for ${u.username}: ${J(h)}`);
  c.hello = h;
  c.user = u;
  return c;
}

let refs = 0;
/* Sends over WebSocket and waits for the ack (an error fails the test with the frame). */
async function wsSend(c, channelId, body, nonce) {
  const ref = `s${++refs}`;
  const a = await wsRequest(c, { op: 'send', channel_id: channelId, body, nonce, ref }, 5000);
  assert.equal(a.op, 'ack', `send ${J({ channelId, body, nonce })} answered ${J(a)}`);
  return a;
}

const messageEvents = (c, chId) => c.queue.filter((m) => m.op === 'message' && (chId === undefined || m.channel_id === chId));
const eventsOf = (c, op, chId) => c.queue.filter((m) => m.op === op && (chId === undefined || m.channel_id === chId));

async function history(u, chId, query = 'after=0&limit=100') {
  const r = await api('GET', `/channels/${chId}/messages?${query}`, u);
  return expectStatus(r, 200, null, `history of ${chId} for ${u.username}`);
}

/* The fields a client compares on: what the `message` event and history share. */
const proj = (m) => ({ id: m.id, seq: m.seq, author_id: m.author_id, author: m.author, body: m.body, nonce: m.nonce });

function assertMessageShape(m, what) {
  assert.ok(m && typeof m === 'object', `${what}: ${J(m)}`);
  assert.match(String(m.id), /^[1-9][0-9]*$/, `${what}: id must be a decimal string: ${J(m)}`);
  assert.equal(typeof m.id, 'string', `${what}: id must be a string: ${J(m)}`);
  assert.ok(Number.isInteger(m.seq) && m.seq > 0, `${what}: seq ${J(m)}`);
  assert.ok(Number.isInteger(m.author_id), `${what}: author_id ${J(m)}`);
  assert.ok(Number.isInteger(m.created_at), `${what}: created_at ${J(m)}`);
  assert.ok('attachments' in m && 'nonce' in m && 'author' in m && 'body' in m, `${what}: missing fields ${J(m)}`);
}

/* ------------------------------------------------------------ tests */

test('fan-out: 3 users, public + private channel + DM, 2 devices each for 2 users: everyone gets exactly their channels, in order', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const carol = await user('carol');
  /* alice: pub, priv, dm. bob: pub, dm. carol: priv only. */
  const pub = await createChannel(alice, uname('pub'));
  const priv = await createChannel(alice, uname('priv'), true);
  await join(bob, pub);
  expectStatus(await api('POST', `/channels/${priv.id}/members`, alice, { username: carol.username }), 201, null, 'add carol to priv');
  const dmr = await api('POST', `/dm/${bob.username}`, alice);
  const dm = expectStatus(dmr, 200, null, 'POST /dm').channel;
  assert.equal(dm.kind, 'dm', J(dm));
  assert.equal(dm.private, true, J(dm));
  /* Idempotent: the same conversation from either side. */
  const dm2 = expectStatus(await api('POST', `/dm/${alice.username}`, bob), 200, null, 'POST /dm back').channel;
  assert.equal(dm2.id, dm.id, `two DMs for one pair: ${J(dm)} ${J(dm2)}`);

  const a1 = await device(alice);
  const a2 = await device(alice);
  const b1 = await device(bob);
  const b2 = await device(bob);
  const c1 = await device(carol);
  const ids = (c) => c.hello.channels.map((x) => x.id).sort((x, y) => x - y);
  const sorted = (...xs) => xs.sort((x, y) => x - y);
  assert.deepEqual(ids(a1), sorted(pub.id, priv.id, dm.id), J(a1.hello));
  assert.deepEqual(ids(a2), sorted(pub.id, priv.id, dm.id), J(a2.hello));
  assert.deepEqual(ids(b1), sorted(pub.id, dm.id), J(b1.hello));
  assert.deepEqual(ids(c1), [priv.id], J(c1.hello));
  assert.equal(a1.hello.user.id, alice.id, J(a1.hello));

  /* Everybody sends at once from several devices, interleaved across channels. */
  const plan = [
    [a1, pub, 4],
    [a2, priv, 3],
    [b1, pub, 4],
    [b2, dm, 3],
    [a1, dm, 2],
    [c1, priv, 3],
    [a2, pub, 2],
  ];
  const acks = await Promise.all(
    plan.map(async ([c, ch, n], k) => {
      const out = [];
      for (let i = 0; i < n; i++) out.push(wsSend(c, ch.id, `${c.user.username} #${i} in ${ch.id} ✓`, `fan-${k}-${i}`));
      return Promise.all(out);
    })
  );
  const want = {};
  for (const ch of [pub, priv, dm]) {
    const h = await history(alice, ch.id);
    assert.equal(h.more, false, J(h));
    want[ch.id] = h.messages.map(proj);
    const n = plan.filter(([, c]) => c.id === ch.id).reduce((s, [, , k]) => s + k, 0);
    assert.deepEqual(
      want[ch.id].map((m) => m.seq),
      Array.from({ length: n }, (_, i) => i + 1),
      `channel ${ch.id}: seqs are not 1..${n}: ${J(h.messages)}`
    );
  }
  /* Every ack names the stored message with its nonce. */
  for (const [k, list] of acks.entries()) {
    const ch = plan[k][1];
    for (const a of list) {
      const m = want[ch.id].find((x) => x.nonce === a.nonce);
      assert.ok(m, `ack ${J(a)} has no message in history`);
      assert.equal(a.id, m.id, J(a));
      assert.equal(a.seq, m.seq, J(a));
      assert.equal(a.channel_id, ch.id, J(a));
      assert.equal(a.duplicate, false, J(a));
    }
  }

  const expect = new Map([
    [a1, [pub, priv, dm]],
    [a2, [pub, priv, dm]],
    [b1, [pub, dm]],
    [b2, [pub, dm]],
    [c1, [priv]],
  ]);
  for (const [c, chans] of expect) {
    const total = chans.reduce((s, ch) => s + want[ch.id].length, 0);
    await c.until(() => messageEvents(c).length >= total, 5000, `${total} message events for ${c.user.username}`);
  }
  await sleep(300); /* anything extra (duplicates, foreign channels) would show up by now */
  for (const [c, chans] of expect) {
    const who = `${c.user.username} device`;
    for (const ev of messageEvents(c)) assertMessageShape(ev.message, `${who} event ${J(ev)}`);
    for (const ch of chans) {
      const got = messageEvents(c, ch.id).map((e) => proj(e.message));
      assert.deepEqual(got, want[ch.id], `${who}: channel ${ch.id} events differ from history`);
    }
    const foreign = messageEvents(c).filter((e) => !chans.some((ch) => ch.id === e.channel_id));
    assert.deepEqual(foreign, [], `${who} received messages of channels it is not in`);
  }

  /* Non-members: the private channel and the DM do not exist for them (404, not 403). */
  expectStatus(await api('GET', `/channels/${priv.id}/messages`, bob), 404, 'not_found', 'bob reads priv history');
  expectStatus(await api('GET', `/channels/${priv.id}`, bob), 404, 'not_found', 'bob GET priv');
  expectStatus(await api('GET', `/channels/${priv.id}/members`, bob), 404, 'not_found', 'bob lists priv members');
  expectStatus(await api('POST', `/channels/${priv.id}/join`, bob), 404, 'not_found', 'bob joins priv');
  expectStatus(await api('POST', `/channels/${priv.id}/messages`, bob, { body: 'x' }), 404, 'not_found', 'bob posts in priv');
  expectStatus(await api('GET', `/channels/${dm.id}/messages`, carol), 404, 'not_found', 'carol reads the DM');
  expectStatus(await api('GET', `/channels/${dm.id}`, carol), 404, 'not_found', 'carol GET dm');
  /* A public channel is visible, but its history and posting are for members (403, subjects.md). */
  expectStatus(await api('GET', `/channels/${pub.id}`, carol), 200, null, 'carol GET pub');
  expectStatus(await api('GET', `/channels/${pub.id}/messages`, carol), 403, 'forbidden', 'carol reads pub');
  expectStatus(await api('POST', `/channels/${pub.id}/messages`, carol, { body: 'x' }), 403, 'forbidden', 'carol posts in pub');
  /* Same over WebSocket. */
  const e1 = await wsRequest(b1, { op: 'history', channel_id: priv.id, ref: 'h1' });
  assert.deepEqual([e1.op, e1.code, e1.channel_id], ['error', 'not_found', priv.id], J(e1));
  const e2 = await wsRequest(b1, { op: 'send', channel_id: priv.id, body: 'x', nonce: 'nope', ref: 'h2' });
  assert.deepEqual([e2.op, e2.code, e2.channel_id], ['error', 'not_found', priv.id], J(e2));
  const e3 = await wsRequest(c1, { op: 'send', channel_id: dm.id, body: 'x', nonce: 'nope', ref: 'h3' });
  assert.deepEqual([e3.op, e3.code, e3.channel_id], ['error', 'not_found', dm.id], J(e3));
  const e4 = await wsRequest(c1, { op: 'send', channel_id: pub.id, body: 'x', nonce: 'nope', ref: 'h4' });
  assert.deepEqual([e4.op, e4.code, e4.channel_id], ['error', 'forbidden', pub.id], J(e4));
  /* Nothing those refusals could have stored or delivered. */
  for (const ch of [pub, priv, dm]) assert.equal((await history(alice, ch.id)).messages.length, want[ch.id].length);
  await sleep(200);
  for (const [c, chans] of expect) {
    const total = chans.reduce((s, ch) => s + want[ch.id].length, 0);
    assert.equal(messageEvents(c).length, total, `${c.user.username}: events after the refused ops`);
  }
  for (const c of expect.keys()) c.ws.close(1000);
});

test('joins and leaves are followed live: channel_joined / member_joined, then delivery; channel_left stops it', async () => {
  const owner = await user('own');
  const dan = await user('dan');
  const pub = await createChannel(owner, uname('room'));
  const o1 = await device(owner);
  const d1 = await device(dan);
  const d2 = await device(dan);
  assert.deepEqual(d1.hello.channels, [], J(d1.hello));

  await join(dan, pub);
  for (const d of [d1, d2]) {
    const cj = await d.until(() => d.queue.find((m) => m.op === 'channel_joined'), 3000, 'channel_joined');
    assert.equal(cj.channel.id, pub.id, J(cj));
    assert.equal(cj.channel.name, pub.name, J(cj));
  }
  const mj = await o1.until(() => o1.queue.find((m) => m.op === 'member_joined'), 3000, 'member_joined');
  assert.deepEqual(mj, { op: 'member_joined', channel_id: pub.id, user_id: dan.id, username: dan.username });
  /* dan is online: joining announces him in the channel (protocol.md, Presence). */
  const pj = await o1.until(() => o1.queue.find((m) => m.op === 'presence' && m.user_id === dan.id), 3000, 'presence of dan');
  assert.deepEqual(pj, { op: 'presence', channel_id: pub.id, user_id: dan.id, username: dan.username, status: 'online' });
  const members = expectStatus(await api('GET', `/channels/${pub.id}/members`, owner), 200, null, 'members');
  assert.deepEqual(members.members.map((m) => m.user_id).sort(), [owner.id, dan.id].sort(), J(members));

  const a = await wsSend(o1, pub.id, 'welcome', 'j1');
  for (const d of [d1, d2]) {
    const ev = await d.until(() => messageEvents(d, pub.id)[0], 3000, 'the message after joining');
    assert.equal(ev.message.id, a.id, J(ev));
  }

  expectStatus(await api('POST', `/channels/${pub.id}/leave`, dan), 200, null, 'leave');
  for (const d of [d1, d2]) {
    const cl = await d.until(() => d.queue.find((m) => m.op === 'channel_left'), 3000, 'channel_left');
    assert.deepEqual(cl, { op: 'channel_left', channel_id: pub.id });
  }
  const ml = await o1.until(() => o1.queue.find((m) => m.op === 'member_left'), 3000, 'member_left');
  assert.deepEqual(ml, { op: 'member_left', channel_id: pub.id, user_id: dan.id, username: dan.username });
  await wsSend(o1, pub.id, 'after dan left', 'j2');
  await o1.until(() => messageEvents(o1, pub.id).length >= 2, 3000, 'own second message');
  await sleep(300);
  for (const d of [d1, d2]) assert.equal(messageEvents(d, pub.id).length, 1, `delivered after leaving: ${J(d.queue)}`);
  for (const c of [o1, d1, d2]) c.ws.close(1000);
});

test('idempotency: the same nonce twice → one message, the same ack with duplicate:true, one event', async () => {
  const ann = await user('ann');
  const ben = await user('ben');
  const ch = await createChannel(ann, uname('idem'));
  await join(ben, ch);
  const a1 = await device(ann);
  const b1 = await device(ben);

  const first = await wsSend(a1, ch.id, 'hello once', 'same-nonce');
  const second = await wsSend(a1, ch.id, 'hello once', 'same-nonce');
  assert.equal(first.duplicate, false, J(first));
  assert.equal(second.duplicate, true, J(second));
  for (const k of ['id', 'seq', 'channel_id', 'nonce', 'created_at']) assert.deepEqual(second[k], first[k], `${k}: ${J(first)} vs ${J(second)}`);
  assert.notEqual(second.ref, first.ref, 'each ack carries its own ref');
  /* A retry with another body is still the same message (the nonce names it). */
  const third = await wsSend(a1, ch.id, 'a different body', 'same-nonce');
  assert.equal(third.duplicate, true, J(third));
  assert.equal(third.id, first.id, J(third));
  /* Over HTTP too: the same nonce is the same message whichever transport carried it. */
  const rest = await api('POST', `/channels/${ch.id}/messages`, ann, { body: 'hello once', nonce: 'same-nonce' });
  const rj = expectStatus(rest, 201, null, 'POST duplicate');
  assert.deepEqual([rj.id, rj.seq, rj.duplicate], [first.id, first.seq, true], rest.text);
  const rest2 = await api('POST', `/channels/${ch.id}/messages`, ann, { body: 'via http', nonce: 'http-nonce' });
  const r2 = expectStatus(rest2, 201, null, 'POST new');
  assert.equal(r2.duplicate, false, rest2.text);
  const viaWs = await wsSend(a1, ch.id, 'via http', 'http-nonce');
  assert.deepEqual([viaWs.id, viaWs.seq, viaWs.duplicate], [r2.id, r2.seq, true], J(viaWs));
  /* The nonce is per user and per channel: another author's identical nonce is a new message. */
  const bens = await wsSend(b1, ch.id, 'ben says', 'same-nonce');
  assert.equal(bens.duplicate, false, J(bens));
  assert.notEqual(bens.id, first.id);

  const h = await history(ann, ch.id);
  assert.deepEqual(
    h.messages.map((m) => [m.seq, m.nonce, m.author_id, m.body]),
    [
      [1, 'same-nonce', ann.id, 'hello once'],
      [2, 'http-nonce', ann.id, 'via http'],
      [3, 'same-nonce', ben.id, 'ben says'],
    ],
    J(h)
  );
  await b1.until(() => messageEvents(b1, ch.id).length >= 3, 3000, '3 events');
  await sleep(300);
  assert.deepEqual(messageEvents(b1, ch.id).map((e) => e.message.seq), [1, 2, 3], `duplicates delivered: ${J(b1.queue)}`);
  a1.ws.close(1000);
  b1.ws.close(1000);
});

test('idempotency across a reconnect: resend after a lost ack, and after a received ack → one copy, the same id/seq', async () => {
  const kim = await user('kim');
  const ch = await createChannel(kim, uname('recon'));

  /* 1. The connection dies right after the send, before the ack is read. */
  const k1 = await device(kim);
  k1.send({ op: 'send', channel_id: ch.id, body: 'lost ack', nonce: 'lost-1', ref: 'x' });
  k1.terminate();
  await k1.waitClose(3000);
  const k2 = await device(kim);
  await sleep(200);
  /* Whether the first send got stored is the server's business; the retry must land on one message. */
  const stored = (await history(kim, ch.id)).messages.find((m) => m.nonce === 'lost-1');
  const retry = await wsSend(k2, ch.id, 'lost ack', 'lost-1');
  if (stored) {
    assert.equal(retry.duplicate, true, `stored before the retry, yet the retry is not a duplicate: ${J(retry)}`);
    assert.deepEqual([retry.id, retry.seq], [stored.id, stored.seq], J(retry));
  }
  let h = await history(kim, ch.id);
  const copies = h.messages.filter((m) => m.nonce === 'lost-1');
  assert.equal(copies.length, 1, `nonce lost-1 stored ${copies.length} times: ${J(h)}`);
  assert.deepEqual([copies[0].id, copies[0].seq], [retry.id, retry.seq], `retry ack ${J(retry)} vs history ${J(copies)}`);

  /* 2. The ack was received, then the connection closed: the resend is a duplicate of it. */
  const acked = await wsSend(k2, ch.id, 'got ack', 'acked-1');
  k2.ws.close(1000);
  await k2.waitClose(3000);
  const k3 = await device(kim);
  const again = await wsSend(k3, ch.id, 'got ack', 'acked-1');
  assert.equal(again.duplicate, true, J(again));
  assert.deepEqual([again.id, again.seq, again.created_at], [acked.id, acked.seq, acked.created_at], `${J(acked)} vs ${J(again)}`);
  h = await history(kim, ch.id);
  assert.equal(h.messages.filter((m) => m.nonce === 'acked-1').length, 1, J(h));
  assert.deepEqual(h.messages.map((m) => m.seq), h.messages.map((_, i) => i + 1), `seqs not gapless: ${J(h)}`);
  k3.ws.close(1000);
});

test('sends written by hand: escapes, an integer ref, any key order are read as JSON; unknown keys ignored; duplicates, \\u0000 and lone surrogates refused', async () => {
  /* The gateway reads a plain send frame with a scan and everything else
   * with jansson: both must give the same answers. */
  const ann = await user('ann');
  const ch = await createChannel(ann, uname('raw'));
  const a1 = await device(ann);
  const reply = (ref) =>
    a1.until(() => {
      const i = a1.queue.findIndex((m) => m && JSON.stringify(m.ref) === JSON.stringify(ref));
      return i >= 0 ? a1.queue.splice(i, 1)[0] : null;
    }, 5000, `the reply to ${J(ref)}`);
  a1.send(`{"op":"send","ref":"r\\/1 \\u00e9","channel_id":${ch.id},"body":"caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/ \\n\\t","nonce":"n\\u0031"}`);
  const one = await reply('r/1 é');
  assert.equal(one.op, 'ack', J(one));
  assert.equal(one.nonce, 'n1', J(one));
  a1.send(`{"ref":42, "nonce" : "n2","body":"two","op":"send","channel_id":${ch.id}}`);
  const two = await reply(42);
  assert.equal(two.op, 'ack', J(two));
  assert.equal(two.seq, one.seq + 1, J(two));
  a1.send(`{"op":"send","channel_id":${ch.id},"body":"three","nonce":"n3","ref":"r3","extra":{"a":[1]}}`);
  assert.equal((await reply('r3')).op, 'ack');
  a1.send(`{"op":"send","ref":[4],"channel_id":${ch.id},"body":"four","nonce":"n4"}`);
  assert.equal((await reply([4])).op, 'ack');
  for (const bad of [
    `{"op":"send","channel_id":${ch.id},"body":"x","body":"y","nonce":"d1"}`,
    `{"op":"send","channel_id":${ch.id},"body":"nul \\u0000","nonce":"d2"}`,
    `{"op":"send","channel_id":${ch.id},"body":"half","nonce":"\\ud800"}`,
    `{"op":"send","channel_id":${ch.id},"body":"half","nonce":"\\udc00\\ud800"}`,
  ]) {
    a1.send(bad);
    const e = await a1.until(() => {
      const i = a1.queue.findIndex((m) => m && m.op === 'error');
      return i >= 0 ? a1.queue.splice(i, 1)[0] : null;
    }, 5000, `the error for ${bad}`);
    assert.equal(e.code, 'bad_json', `${bad}: ${J(e)}`);
  }
  const h = await history(ann, ch.id);
  assert.deepEqual(
    h.messages.map((m) => [m.body, m.nonce]),
    [['café 😀 "q" \\ / \n\t', 'n1'], ['two', 'n2'], ['three', 'n3'], ['four', 'n4']],
    J(h)
  );
  a1.ws.close(1000);
});

test('edits and deletes: author only (403 for another member, 404 for a non-member), events reach members only', async () => {
  const eve = await user('eve');
  const fay = await user('fay');
  const gus = await user('gus');
  const ch = await createChannel(eve, uname('edit'), true);
  expectStatus(await api('POST', `/channels/${ch.id}/members`, eve, { username: fay.username }), 201, null, 'add fay');
  const other = await createChannel(eve, uname('other'));
  const e1 = await device(eve);
  const f1 = await device(fay);
  const g1 = await device(gus);

  const m1 = await wsSend(e1, ch.id, 'original', 'ed-1');
  const m2 = await wsSend(e1, ch.id, 'to delete', 'ed-2');
  await f1.until(() => messageEvents(f1, ch.id).length >= 2, 3000, 'two messages');
  const path1 = `/channels/${ch.id}/messages/${m1.id}`;
  const path2 = `/channels/${ch.id}/messages/${m2.id}`;

  expectStatus(await api('PATCH', path1, fay, { body: 'hijack' }), 403, 'forbidden', 'fay edits eve');
  expectStatus(await api('DELETE', path1, fay), 403, 'forbidden', 'fay deletes eve');
  expectStatus(await api('PATCH', path1, gus, { body: 'hijack' }), 404, 'not_found', 'non-member edits');
  expectStatus(await api('DELETE', path1, gus), 404, 'not_found', 'non-member deletes');
  expectStatus(await api('PATCH', `/channels/${other.id}/messages/${m1.id}`, eve, { body: 'x' }), 404, 'not_found', 'message of another channel');
  expectStatus(await api('PATCH', `/channels/${ch.id}/messages/999999999999`, eve, { body: 'x' }), 404, 'not_found', 'unknown message');
  expectStatus(await api('PATCH', path1, eve, { body: 'y'.repeat(4001) }), 400, 'invalid_body', 'edit with a 4001-char body');
  expectStatus(await api('PATCH', path1, eve, { body: '' }), 400, 'invalid_body', 'edit with an empty body');

  const ed = expectStatus(await api('PATCH', path1, eve, { body: 'edited ✎' }), 200, null, 'eve edits').message;
  assert.deepEqual([ed.id, ed.seq, ed.body, ed.author_id], [m1.id, m1.seq, 'edited ✎', eve.id], J(ed));
  assert.ok(Number.isInteger(ed.edited_at) && ed.edited_at >= m1.created_at, `edited_at: ${J(ed)}`);
  for (const c of [e1, f1]) {
    const ev = await c.until(() => eventsOf(c, 'message_edited', ch.id)[0], 3000, 'message_edited');
    assert.equal(ev.message.id, m1.id, J(ev));
    assert.equal(ev.message.seq, m1.seq, J(ev));
    assert.equal(ev.message.body, 'edited ✎', J(ev));
    assert.equal(ev.message.edited_at, ed.edited_at, J(ev));
  }

  expectStatus(await api('DELETE', path2, eve), 204, null, 'eve deletes');
  for (const c of [e1, f1]) {
    const ev = await c.until(() => eventsOf(c, 'message_deleted', ch.id)[0], 3000, 'message_deleted');
    assert.deepEqual(ev, { op: 'message_deleted', channel_id: ch.id, id: m2.id, seq: m2.seq });
  }
  /* Deleting again succeeds and publishes nothing. */
  expectStatus(await api('DELETE', path2, eve), 204, null, 'delete twice');

  const h = await history(fay, ch.id);
  assert.equal(h.messages.length, 2, J(h));
  assert.deepEqual([h.messages[0].body, h.messages[0].edited_at], ['edited ✎', ed.edited_at], J(h.messages[0]));
  assert.deepEqual([h.messages[1].seq, h.messages[1].deleted, h.messages[1].body], [m2.seq, true, ''], J(h.messages[1]));
  /* The deleted seq stays taken: the next message is seq 3. */
  const m3 = await wsSend(f1, ch.id, 'next', 'ed-3');
  assert.equal(m3.seq, 3, J(m3));

  await sleep(300);
  for (const c of [e1, f1]) {
    assert.equal(eventsOf(c, 'message_edited').length, 1, `edit events: ${J(c.queue)}`);
    assert.equal(eventsOf(c, 'message_deleted').length, 1, `delete events (a second delete must publish nothing): ${J(c.queue)}`);
  }
  const leaked = g1.queue.filter((m) => m.channel_id === ch.id);
  assert.deepEqual(leaked, [], 'a non-member received events of a private channel');
  for (const c of [e1, f1, g1]) c.ws.close(1000);
});

test('typing: reaches members (the typist\'s devices too), not non-members; 1 per 2 s per connection; never stored', async () => {
  const tia = await user('tia');
  const ugo = await user('ugo');
  const vic = await user('vic');
  const ch = await createChannel(tia, uname('typing'));
  await join(ugo, ch);
  const t1 = await device(tia);
  const t2 = await device(tia);
  const u1 = await device(ugo);
  const v1 = await device(vic);
  const before = await history(tia, ch.id);

  const want = { op: 'typing', channel_id: ch.id, user_id: tia.id, username: tia.username };
  t1.send({ op: 'typing', channel_id: ch.id });
  t1.send({ op: 'typing', channel_id: ch.id }); /* within 2 s: dropped */
  for (const c of [u1, t2]) {
    const ev = await c.until(() => eventsOf(c, 'typing')[0], 3000, 'typing');
    assert.deepEqual(ev, want);
  }
  await sleep(500);
  assert.equal(eventsOf(u1, 'typing').length, 1, `second typing within 2 s was delivered: ${J(u1.queue)}`);
  /* The limit is per connection: the other device may type at once. */
  t2.send({ op: 'typing', channel_id: ch.id });
  await u1.until(() => eventsOf(u1, 'typing').length >= 2, 3000, 'typing from the second device');
  /* Not a member → not_found, with the ref and channel. */
  const err = await wsRequest(v1, { op: 'typing', channel_id: ch.id, ref: 'vt' });
  assert.deepEqual([err.op, err.code, err.ref, err.channel_id], ['error', 'not_found', 'vt', ch.id], J(err));
  /* After 2 s the first device may type again. */
  await sleep(2100);
  t1.send({ op: 'typing', channel_id: ch.id });
  await u1.until(() => eventsOf(u1, 'typing').length >= 3, 3000, 'typing after 2 s');

  await sleep(200);
  assert.deepEqual(eventsOf(v1, 'typing'), [], 'a non-member received typing');
  const after = await history(tia, ch.id);
  assert.deepEqual(after.messages, before.messages, 'typing was stored');
  const got = expectStatus(await api('GET', `/channels/${ch.id}`, tia), 200, null, 'GET channel').channel;
  assert.equal(got.last_seq, 0, J(got));
  for (const c of [t1, t2, u1, v1]) c.ws.close(1000);
});

test('presence: online at the first device, nothing for the second, offline only when both are gone; non-members see nothing', async () => {
  const wes = await user('wes');
  const xia = await user('xia');
  const yul = await user('yul');
  const ch = await createChannel(xia, uname('pres'));
  await join(wes, ch);
  const x1 = await device(xia);
  const y1 = await device(yul);
  await sleep(200);
  const ofWes = (c) => eventsOf(c, 'presence').filter((p) => p.user_id === wes.id);
  assert.deepEqual(ofWes(x1), [], 'presence for wes before he connected');

  const w1 = await device(wes);
  const on = await x1.until(() => ofWes(x1)[0], 3000, 'wes online');
  assert.deepEqual(on, { op: 'presence', channel_id: ch.id, user_id: wes.id, username: wes.username, status: 'online' });
  const w2 = await device(wes);
  await sleep(400);
  assert.equal(ofWes(x1).length, 1, `second device published presence: ${J(ofWes(x1))}`);

  w1.ws.close(1000);
  await w1.waitClose(3000);
  await sleep(500);
  assert.equal(ofWes(x1).length, 1, `offline while a device is still connected: ${J(ofWes(x1))}`);

  w2.terminate(); /* an abrupt disconnect counts too */
  const off = await x1.until(() => ofWes(x1)[1], 3000, 'wes offline');
  assert.deepEqual(off, { op: 'presence', channel_id: ch.id, user_id: wes.id, username: wes.username, status: 'offline' });
  await sleep(300);
  assert.equal(ofWes(x1).length, 2, J(ofWes(x1)));
  assert.deepEqual(ofWes(y1), [], 'a non-member saw wes\'s presence');
  x1.ws.close(1000);
  y1.ws.close(1000);
});

test('read state: read op and POST /read sync the user\'s other devices; unread counts go down; never backwards', async () => {
  const zoe = await user('zoe');
  const abe = await user('abe');
  const ch = await createChannel(abe, uname('read'));
  await join(zoe, ch);
  for (let i = 1; i <= 5; i++) {
    expectStatus(await api('POST', `/channels/${ch.id}/messages`, abe, { body: `m${i}`, nonce: `r${i}` }), 201, null, 'post');
  }
  const mine = async () => {
    const r = expectStatus(await api('GET', '/channels', zoe), 200, null, 'GET /channels');
    const c = r.channels.find((x) => x.id === ch.id);
    assert.ok(c, J(r));
    return [c.last_read_seq, c.unread];
  };
  assert.deepEqual(await mine(), [0, 5]);
  const z1 = await device(zoe);
  const z2 = await device(zoe);
  const a1 = await device(abe);
  const hc = z1.hello.channels.find((x) => x.id === ch.id);
  assert.deepEqual([hc.last_seq, hc.last_read_seq, hc.unread], [5, 0, 5], J(hc));

  const ack = await wsRequest(z1, { op: 'read', channel_id: ch.id, seq: 3, ref: 'rd' });
  assert.deepEqual(ack, { op: 'read_ack', ref: 'rd', channel_id: ch.id, last_read_seq: 3 });
  const ev = await z2.until(() => eventsOf(z2, 'read')[0], 3000, 'read on the other device');
  assert.deepEqual(ev, { op: 'read', channel_id: ch.id, seq: 3 });
  assert.deepEqual(await mine(), [3, 2]);

  const r = await api('POST', `/channels/${ch.id}/read`, zoe, { seq: 5 });
  assert.deepEqual(expectStatus(r, 200, null, 'POST read'), { channel_id: ch.id, last_read_seq: 5 });
  for (const c of [z1, z2]) await c.until(() => eventsOf(c, 'read').some((e) => e.seq === 5), 3000, 'read 5');
  assert.deepEqual(await mine(), [5, 0]);

  /* Never backwards. */
  const back = await wsRequest(z2, { op: 'read', channel_id: ch.id, seq: 1, ref: 'back' });
  assert.deepEqual(back, { op: 'read_ack', ref: 'back', channel_id: ch.id, last_read_seq: 5 });
  assert.deepEqual(await mine(), [5, 0]);

  /* New messages count again. */
  await wsSend(a1, ch.id, 'new 1', 'n1');
  await wsSend(a1, ch.id, 'new 2', 'n2');
  assert.deepEqual(await mine(), [5, 2]);
  const z3 = await device(zoe);
  const h3 = z3.hello.channels.find((x) => x.id === ch.id);
  assert.deepEqual([h3.last_seq, h3.last_read_seq, h3.unread], [7, 5, 2], J(h3));

  /* Read state is per user: abe's device never gets zoe's read events; non-members get 404. */
  await sleep(200);
  assert.deepEqual(eventsOf(a1, 'read'), [], `another user received read events: ${J(eventsOf(a1, 'read'))}`);
  const stranger = await user('str');
  expectStatus(await api('POST', `/channels/${ch.id}/read`, stranger, { seq: 1 }), 404, 'not_found', 'non-member read');
  for (const c of [z1, z2, z3, a1]) c.ws.close(1000);
});

test('authorization rules: DMs cannot be left or extended, private channels are owner-managed and hidden from browsing', async () => {
  const ola = await user('ola');
  const pia = await user('pia');
  const quin = await user('quin');
  const pub = await createChannel(ola, uname('open'));
  const priv = await createChannel(ola, uname('closed'), true);
  const dm = expectStatus(await api('POST', `/dm/${pia.username}`, ola), 200, null, 'dm').channel;
  assert.equal(dm.peer_id, pia.id, J(dm));
  assert.equal(dm.peer, pia.username, J(dm));
  const back = expectStatus(await api('GET', `/channels/${dm.id}`, pia), 200, null, 'dm seen by pia').channel;
  assert.deepEqual([back.peer_id, back.peer], [ola.id, ola.username], `the peer is the other user for each side: ${J(back)}`);

  expectStatus(await api('POST', `/channels/${dm.id}/leave`, ola), 403, 'forbidden', 'leave a DM');
  expectStatus(await api('POST', `/channels/${dm.id}/members`, ola, { username: quin.username }), 403, 'forbidden', 'add to a DM');
  expectStatus(await api('POST', `/channels/${dm.id}/join`, quin), 404, 'not_found', 'join someone else\'s DM');
  /* Private: only the owner adds; a member who is not the owner gets 403. */
  expectStatus(await api('POST', `/channels/${priv.id}/members`, ola, { username: pia.username }), 201, null, 'owner adds pia');
  expectStatus(await api('POST', `/channels/${priv.id}/members`, pia, { username: quin.username }), 403, 'forbidden', 'member adds to private');
  expectStatus(await api('POST', `/channels/${priv.id}/members`, quin, { username: quin.username }), 404, 'not_found', 'outsider adds to private');
  /* Public: a member may add; a non-member may not (403). */
  expectStatus(await api('POST', `/channels/${pub.id}/members`, quin, { username: pia.username }), 403, 'forbidden', 'non-member adds to public');
  await join(pia, pub);
  const added = expectStatus(await api('POST', `/channels/${pub.id}/members`, pia, { username: quin.username }), 201, null, 'member adds to public');
  assert.equal(added.member.user_id, quin.id, J(added));
  /* Browsing lists public channels only. */
  const seen = [];
  let after = 0;
  for (let guard = 0; guard < 100; guard++) {
    const r = expectStatus(await api('GET', `/channels?public=1&after=${after}&limit=2`, quin), 200, null, 'browse');
    assert.ok(r.channels.length <= 2, J(r));
    seen.push(...r.channels);
    if (!r.more) break;
    after = r.channels[r.channels.length - 1].id;
  }
  assert.ok(seen.some((c) => c.id === pub.id), 'the public channel is listed');
  const leaked = seen.filter((c) => c.private || c.kind !== 'channel');
  assert.deepEqual(leaked, [], 'private channels or DMs in the public list');
  const ids = seen.map((c) => c.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'browse order');
  assert.equal(new Set(ids).size, ids.length, 'a channel listed twice across pages');
});

/*
 * protocol.md: hello is "always the first message of a session"; ops may be
 * sent at once, before hello (send, read and history work); with ?resume=1
 * "if the first message is another op, hello is sent before its answer".
 * The ops here are written in the same TCP write as the upgrade request, so
 * the server reads them while it is still loading the channel list.
 */
test('ops sent with the upgrade request (before hello) are answered after hello, with and without ?resume=1', async () => {
  const kay = await user('kay');
  const ch = await createChannel(kay, uname('early'));
  const cases = [
    [{ op: 'ping', ref: 'p' }, 'pong'],
    [{ op: 'echo', data: 1, ref: 'e' }, 'echo'],
    [{ op: 'frob', ref: 'u' }, 'error'],
    ['{not json', 'error'],
    [{ op: 'send', channel_id: ch.id, body: 'early', nonce: 'early-1', ref: 's' }, 'ack'],
    [{ op: 'history', channel_id: ch.id, ref: 'h' }, 'history'],
    [{ op: 'read', channel_id: ch.id, seq: 0, ref: 'r' }, 'read_ack'],
  ];
  const bad = [];
  for (const q of ['', '&resume=1']) {
    for (const [msg, answer] of cases) {
      const { frames, sock } = await wsUpgradeWithFrames(fx.port, kay.token + q, [msg], (fs) => fs.some((f) => f.op === answer) && fs.some((f) => f.op === 'hello'));
      sock.destroy();
      const ops = frames.map((f) => f.op);
      if (ops[0] !== 'hello' || !ops.includes(answer)) bad.push(`query "${q}" ${J(msg)}: frames ${J(frames.map((f) => J(f).slice(0, 90)))}`);
    }
  }
  assert.ok(bad.length === 0, `hello was not the first frame (or no answer):\n${bad.join('\n')}`);
});
