'use strict';
/*
 * presence_large.test.js — --presence-max-members: presence is fanned out
 * in a channel only while at most that many of its members are connected
 * to the gateway. Each online/offline goes to every member, so a channel
 * of N members coming online costs N² frames; past the threshold the
 * channel gets no presence, and everything else still flows.
 */
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, killStragglers, newUser, wsOpen, apiCall, sleep } = require('./helpers');

after(() => killStragglers());

const ARGS = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '1000', '--auth-burst', '1000', '--presence-max-members', '2'];
const presenceOf = (c, uid) => c.queue.filter((m) => m && m.op === 'presence' && m.user_id === uid);

async function device(port, u) {
  const c = await wsOpen(port, u.token);
  const h = await c.next(5000);
  assert.equal(h.op, 'hello', JSON.stringify(h));
  return c;
}

test('presence stops past --presence-max-members members connected; messages still flow', async () => {
  const srv = await startServer(ARGS, { token: false });
  const t = crypto.randomBytes(3).toString('hex');
  const [a, b, c] = [await newUser(srv.port, `pa${t}`), await newUser(srv.port, `pb${t}`), await newUser(srv.port, `pc${t}`)];
  const r = await apiCall(srv.port, 'POST', '/channels', a.token, { name: `pl${t}` });
  assert.equal(r.status, 201, r.text);
  const ch = r.json.channel;
  for (const u of [b, c]) assert.equal((await apiCall(srv.port, 'POST', `/channels/${ch.id}/join`, u.token)).status, 200);

  const da = await device(srv.port, a);
  const db = await device(srv.port, b); /* 2 members connected: at the threshold */
  await da.until(() => presenceOf(da, b.id)[0], 3000, 'presence of b (2 members connected)');
  const dc = await device(srv.port, c); /* 3: past it */
  await sleep(500);
  assert.deepEqual(presenceOf(da, c.id), [], 'presence delivered past the threshold');
  assert.deepEqual(presenceOf(db, c.id), [], 'presence delivered past the threshold');
  /* Messages are not affected. */
  da.send({ op: 'send', channel_id: ch.id, body: 'still here', nonce: 'n1', ref: 1 });
  for (const d of [db, dc]) await d.until(() => d.queue.find((m) => m.op === 'message' && m.message.body === 'still here'), 3000, 'message');
  /* Back at the threshold, presence flows again. */
  dc.ws.close(1000);
  await dc.waitClose(3000);
  await sleep(200);
  db.ws.close(1000);
  await da.until(() => presenceOf(da, b.id).find((p) => p.status === 'offline'), 3000, 'offline of b (1 member left)');
  da.ws.close(1000);
  await srv.stop();
});
