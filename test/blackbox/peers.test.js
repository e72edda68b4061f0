'use strict';
/*
 * peers.test.js — the benchmark peers of bench/peers/ (bun-room.js on Bun,
 * node-ws-room.js on Node + ws) serve the room protocol of
 * bench/peers/README.md: hello first, a broadcast reaches every member of
 * the room (the sender included) and nobody else, bad rooms are refused
 * with 400 before the upgrade, bad messages get an error for the sender
 * only, and SIGTERM exits 0. `storm-load --peer` relies on all of it.
 *
 * Bun is the devDependency (node_modules/.bin/bun, from `npm ci`): a
 * missing binary fails the test, it is never skipped.
 */
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { ROOT, WsClient, freePort, sleep } = require('./helpers');

const BUN = path.join(ROOT, 'node_modules', '.bin', 'bun');
const J = (v) => JSON.stringify(v);

const PEERS = [
  { name: 'bun-room', cmd: BUN, script: 'bench/peers/bun-room.js' },
  { name: 'node-ws-room', cmd: process.execPath, script: 'bench/peers/node-ws-room.js' },
];

/* Starts a peer on a free port; resolves {proc, port, out, err, exited}. */
async function startPeer(peer) {
  if (!fs.existsSync(peer.cmd)) throw new Error(`${peer.cmd} is missing: run npm ci`);
  const want = await freePort();
  const proc = spawn(peer.cmd, [path.join(ROOT, peer.script), '--port', String(want)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p = { proc, port: 0, out: '', err: '', exit: null };
  p.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((p.exit = { code, signal }))));
  proc.stderr.on('data', (d) => (p.err += d));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${peer.name}: no "listening" within 5 s; ${J(p)}`)), 5000);
    proc.stdout.on('data', (d) => {
      p.out += d;
      if (p.out.includes('\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    p.exited.then((e) => reject(new Error(`${peer.name} exited before listening: ${J(e)} ${p.err}`)));
  });
  assert.equal(p.out, `listening ${want}\n`, `${peer.name} stdout`);
  p.port = want;
  return p;
}

/* The status of a WebSocket upgrade to path (101, or the refusal's). */
function upgradeStatus(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: p,
      agent: false, /* no pooled socket outlives the test */
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.setTimeout(3000, () => req.destroy(new Error(`GET ${p}: no answer in 3 s`)));
    req.on('upgrade', (res, sock) => {
      sock.destroy();
      resolve(res.statusCode);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', reject);
    req.end();
  });
}

for (const peer of PEERS) {
  describe(peer.name, () => {
    let p;
    const clients = [];
    before(async () => {
      p = await startPeer(peer);
    });
    after(async () => {
      for (const c of clients) c.terminate();
      if (p && !p.exit) p.proc.kill('SIGKILL');
    });

    /* A client in room, its hello checked (the first frame). */
    async function member(room) {
      const c = await WsClient.open(`ws://127.0.0.1:${p.port}/ws?room=${room}&ignored=1`);
      clients.push(c);
      assert.deepEqual(await c.next(2000), { op: 'hello' }, `${peer.name}: first frame`);
      return c;
    }

    test('hello first; a broadcast reaches every member of the room, the sender included, and no other room', async () => {
      const [a, b, c] = [await member(7), await member(7), await member(7)];
      const other = await member(8);
      const body = 'héllo "q" \\ \n 🌩';
      a.send({ op: 'broadcast', channel_id: 7, body, ref: 'r1' });
      const want = { op: 'broadcast', channel_id: 7, user_id: 0, body };
      for (const [who, x] of [['sender', a], ['b', b], ['c', c]]) {
        assert.deepEqual(await x.next(2000), want, `${peer.name}: ${who}`);
      }
      /* Per-sender order holds, and room 8 has its own traffic. */
      for (let i = 0; i < 20; i++) b.send({ op: 'broadcast', channel_id: 7, body: `n${i}` });
      other.send({ op: 'broadcast', channel_id: 8, body: 'eight' });
      assert.deepEqual(await other.next(2000), { op: 'broadcast', channel_id: 8, user_id: 0, body: 'eight' });
      for (const x of [a, b, c]) {
        const got = [];
        for (let i = 0; i < 20; i++) got.push((await x.next(2000)).body);
        assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `n${i}`), `${peer.name}: order`);
      }
      await sleep(100);
      for (const x of [a, b, c]) assert.deepEqual(x.queue, [], `${peer.name}: room 7 got more: ${J(x.queue)}`);
      assert.deepEqual(other.queue, [], `${peer.name}: room 8 got room 7's traffic: ${J(other.queue)}`);
    });

    test('a missing or bad room is refused with 400 before the upgrade', async () => {
      assert.equal(await upgradeStatus(p.port, '/ws?room=3'), 101, `${peer.name}: a good room`);
      for (const q of ['/ws', '/ws?room=', '/ws?room=0', '/ws?room=-1', '/ws?room=1.5', '/ws?room=abc', '/ws?room=012', '/ws?room=99999999999999999999', '/ws?x=1']) {
        assert.equal(await upgradeStatus(p.port, q), 400, `${peer.name}: GET ${q}`);
      }
    });

    test('bad messages: error bad_request to the sender only; another room is not_found; the connection stays open', async () => {
      const a = await member(11);
      const b = await member(11);
      const long = 'x'.repeat(4001);
      const bad = [
        'not json',
        '[1,2]',
        'null',
        J({ op: 'send', channel_id: 11, body: 'x' }),
        J({ channel_id: 11, body: 'x' }),
        J({ op: 'broadcast', channel_id: '11', body: 'x' }),
        J({ op: 'broadcast', channel_id: 0, body: 'x' }),
        J({ op: 'broadcast', channel_id: 11.5, body: 'x' }),
        J({ op: 'broadcast', channel_id: 11 }),
        J({ op: 'broadcast', channel_id: 11, body: 5 }),
        J({ op: 'broadcast', channel_id: 11, body: '' }),
        J({ op: 'broadcast', channel_id: 11, body: long }),
      ];
      for (const m of bad) {
        a.send(m);
        assert.deepEqual(await a.next(2000), { op: 'error', code: 'bad_request' }, `${peer.name}: ${m.slice(0, 80)}`);
      }
      a.send({ op: 'broadcast', channel_id: 12, body: 'elsewhere' });
      assert.deepEqual(await a.next(2000), { op: 'error', code: 'not_found' }, `${peer.name}: another room`);
      /* 4,000 characters, 8,000 UTF-16 units: within the limit. */
      const astral = '🌩'.repeat(4000);
      a.send({ op: 'broadcast', channel_id: 11, body: astral });
      assert.equal((await a.next(2000)).body, astral, `${peer.name}: 4000 astral characters`);
      assert.equal((await b.next(2000)).body, astral, `${peer.name}: 4000 astral characters at b`);
      assert.deepEqual(b.queue, [], `${peer.name}: b saw errors or more: ${J(b.queue)}`);
      assert.equal(a.closeInfo, null, `${peer.name}: closed`);
    });

    test('SIGTERM: exit 0', async () => {
      await member(5);
      p.proc.kill('SIGTERM');
      let timer;
      const e = await Promise.race([p.exited, new Promise((r) => (timer = setTimeout(() => r(null), 3000)))]);
      clearTimeout(timer); /* a pending timer would hold the file open 3 s */
      assert.deepEqual(e, { code: 0, signal: null }, `${peer.name}: exit after SIGTERM; stderr ${p.err}`);
    });
  });
}
