'use strict';
/*
 * ws.test.js — WebSocket sessions on /ws with the independent `ws` client:
 * hello, the diagnostic ops, errors, fragmentation, ping/pong both ways,
 * heartbeat and idle timeout, close handshake, the connection gauge and the
 * slow-consumer policy (raw socket that never reads).
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { CLUSTER,
  serverFixture,
  WsClient,
  wsConnectRaw,
  buildFrame,
  closePayload,
  handshakeRequest,
  metrics,
  waitMetric,
  sleep,
  show,
} = require('./helpers');

const open = [];

async function client(opts) {
  const c = await WsClient.open(fx.srv.wsUrl(), opts);
  open.push(c);
  return c;
}

/* Opens a client and consumes its hello. */
async function ready(opts) {
  const c = await client(opts);
  const h = await c.next();
  assert.equal(h.op, 'hello', JSON.stringify(h));
  return c;
}

/* Registered before the fixture so clients are gone before the server stops. */
after(async () => {
  for (const c of open) c.terminate();
  await sleep(100);
});

const fx = serverFixture(['--ws-heartbeat', '1s', '--ws-idle-timeout', '3s', '--ws-outbuf-limit', '65536']);
before(fx.start);
afterEach(fx.check);
after(fx.finish);

test('handshake: first message is hello with a 32-hex session_id and heartbeat_interval', async () => {
  const a = await client();
  const b = await client();
  const ha = await a.next();
  const hb = await b.next();
  for (const h of [ha, hb]) {
    assert.equal(h.op, 'hello', JSON.stringify(h));
    assert.match(h.session_id, /^[0-9a-f]{32}$/, JSON.stringify(h));
    assert.equal(h.heartbeat_interval, 1000, JSON.stringify(h));
  }
  assert.notEqual(ha.session_id, hb.session_id, 'two sessions share a session_id');
  a.ws.close(1000);
  b.ws.close(1000);
});

test('op ping → pong with the same ref', async () => {
  const c = await ready();
  assert.deepEqual(await c.request({ op: 'ping', ref: 1 }), { op: 'pong', ref: 1 });
  c.ws.close(1000);
});

test('op echo returns data and ref unchanged (non-ASCII included)', async () => {
  const c = await ready();
  const data = { x: [1, 'é'], nested: { emoji: '😀', n: null, t: true, f: 1.5 } };
  assert.deepEqual(await c.request({ op: 'echo', data, ref: 'a' }), { op: 'echo', data, ref: 'a' });
  c.ws.close(1000);
});

test('unknown op → {"op":"error","code":"unknown_op",message,ref}', async () => {
  const c = await ready();
  const r = await c.request({ op: 'frobnicate', ref: 7 });
  assert.equal(r.op, 'error', JSON.stringify(r));
  assert.equal(r.code, 'unknown_op', JSON.stringify(r));
  assert.equal(typeof r.message, 'string');
  assert.ok(r.message.length > 0);
  assert.equal(r.ref, 7);
  /* The session survives an application error. */
  assert.deepEqual(await c.request({ op: 'ping', ref: 8 }), { op: 'pong', ref: 8 });
  c.ws.close(1000);
});

test('non-JSON text → {"op":"error","code":"bad_json"} and the session continues', async () => {
  const c = await ready();
  c.send('this is {not json');
  const r = await c.next();
  assert.equal(r.op, 'error', JSON.stringify(r));
  assert.equal(r.code, 'bad_json', JSON.stringify(r));
  assert.equal(typeof r.message, 'string');
  assert.deepEqual(await c.request({ op: 'ping', ref: 2 }), { op: 'pong', ref: 2 });
  c.ws.close(1000);
});

test('a binary message → close 1003', async () => {
  const c = await ready();
  c.send(Buffer.from([1, 2, 3]), { binary: true });
  const info = await c.waitClose(3000);
  assert.equal(info.code, 1003, JSON.stringify(info));
});

test('fragmented text message (3 frames) is reassembled', async () => {
  const c = await ready();
  const msg = JSON.stringify({ op: 'echo', data: { s: 'fragmented é message' }, ref: 'frag' });
  const cut = [0, 7, 20, msg.length];
  for (let i = 0; i < 3; i++) c.send(msg.slice(cut[i], cut[i + 1]), { fin: i === 2 });
  const r = await c.next();
  assert.deepEqual(r, { op: 'echo', data: { s: 'fragmented é message' }, ref: 'frag' });
  c.ws.close(1000);
});

test('client ping → pong with the same payload', async () => {
  const c = await ready();
  const payload = Buffer.from('ping-payload-\u00e9-123');
  c.ws.ping(payload);
  await c.until(() => c.pongs.length > 0, 2000, 'a pong');
  assert.deepEqual(c.pongs[0].data, payload);
  c.ws.close(1000);
});

test('server heartbeat: a ping arrives within ~1–2.5 s (--ws-heartbeat 1s)', async () => {
  const c = await ready();
  await c.until(() => c.pings.length > 0, 2600, 'a server ping');
  /* ws answers it (autoPong); the session stays open past the idle timeout. */
  await sleep(3600);
  assert.equal(c.closeInfo, null, `closed although it answered pings: ${JSON.stringify(c.closeInfo)}`);
  assert.ok(c.pings.length >= 2, `only ${c.pings.length} pings in ~5 s`);
  c.ws.close(1000);
});

test('idle timeout (--ws-idle-timeout 3s): a client that answers nothing is closed with 1001 within ~3–5 s', async () => {
  const c = await ready({ autoPong: false });
  const t0 = c.openedAt;
  const info = await c.waitClose(6500);
  const dt = info.at - t0;
  assert.equal(info.code, 1001, JSON.stringify(info));
  assert.ok(dt >= 2500 && dt <= 5500, `closed after ${dt} ms, expected ~3–5 s`);
  assert.ok(c.pings.length >= 1, 'no ping was sent before the idle close');
});

test('client close 1000 → the server echoes close 1000', async () => {
  const c = await ready();
  c.ws.close(1000, 'bye');
  const info = await c.waitClose(3000);
  assert.equal(info.code, 1000, JSON.stringify(info));
});

test('client close 1000 over raw TCP → the server echoes a 1000 close frame and closes TCP', async () => {
  const { sock } = await wsConnectRaw(fx.srv);
  try {
    await sock.write(buildFrame({ opcode: 0x8, payload: closePayload(1000, 'bye') }));
    const { close } = await sock.readUntilClose(3000);
    assert.equal(close.code, 1000, show(close.raw));
    assert.ok(await sock.waitClosed(3000), 'TCP not closed after the close handshake');
  } finally {
    sock.destroy();
  }
});

test('storm_ws_connections_open follows open sockets; frame counters grow', { skip: CLUSTER && 'the metrics of one process (three gateways share the port)' }, async () => {
  await waitMetric(fx.port, (m) => m.value('storm_ws_connections_open') === 0, 4000, 'no WebSocket left open by earlier tests');
  const m0 = await metrics(fx.port);
  const a = await ready();
  const b = await ready();
  await a.request({ op: 'ping', ref: 1 });
  const m1 = await metrics(fx.port);
  assert.equal(m1.value('storm_ws_connections_open'), 2, m1.text);
  assert.ok(m1.value('storm_ws_frames_in_total') >= m0.value('storm_ws_frames_in_total') + 1, m1.text);
  assert.ok(m1.value('storm_ws_frames_out_total') >= m0.value('storm_ws_frames_out_total') + 3, m1.text);
  a.ws.close(1000);
  await a.waitClose(3000);
  await waitMetric(fx.port, (m) => m.value('storm_ws_connections_open') === 1, 3000, 'gauge back to 1 after one close');
  b.terminate();
  await waitMetric(fx.port, (m) => m.value('storm_ws_connections_open') === 0, 3000, 'gauge back to 0 after a TCP drop');
});

test('slow consumer (--ws-outbuf-limit 64k): a reader that never reads is closed; others stay fast', { skip: CLUSTER && 'counts a metric of one process (three gateways share the port)' }, async (t) => {
  const m0 = await metrics(fx.port);
  const closes0 = m0.value('storm_ws_slow_consumer_closes_total');
  assert.equal(typeof closes0, 'number', m0.text);

  /* Observer: a normal client whose ping/pong round trip is timed after every batch. */
  const obs = await ready();
  const rtts = [];
  let ref = 0;
  const probe = async () => {
    const t = Date.now();
    await obs.request({ op: 'ping', ref: ++ref }, 3000);
    rtts.push(Date.now() - t);
  };

  /* Slow client: raw socket, handshake and hello, then never read again.
   * Waiting for hello matters: frames sent before it are held, and a flood
   * of them is closed 1008 "too many messages before hello" instead (CI
   * saw that once, when the channel list answered late). */
  const sock = net.connect({ port: fx.port, host: '127.0.0.1' });
  let hs = Buffer.alloc(0);
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.on('data', (d) => {
      hs = Buffer.concat([hs, d]);
      if (hs.includes('\r\n\r\n') && hs.includes('"op":"hello"')) resolve();
    });
    sock.write(handshakeRequest({ token: fx.srv.token }));
  });
  assert.match(hs.toString('latin1'), /^HTTP\/1\.1 101 /, show(hs));
  sock.pause();
  sock.removeAllListeners('data');
  let sockErr = null;
  sock.on('error', (e) => (sockErr = e));

  const data = 'x'.repeat(16 * 1024);
  let sent = 0;
  let closes = closes0;
  const t0 = Date.now();
  try {
    while (sent < 3000 && !sockErr && Date.now() - t0 < 15000) {
      for (let i = 0; i < 50; i++) sock.write(buildFrame({ payload: JSON.stringify({ op: 'echo', data, ref: sent++ }) }));
      await probe();
      if (sent % 250 === 0) {
        closes = (await metrics(fx.port)).value('storm_ws_slow_consumer_closes_total');
        if (closes > closes0) break;
      }
    }
    const m = await waitMetric(
      fx.port,
      (mm) => mm.value('storm_ws_slow_consumer_closes_total') > closes0,
      5000,
      `storm_ws_slow_consumer_closes_total > ${closes0} (sent ${sent} x 16 KiB echo requests, socket error: ${sockErr && sockErr.code})`
    );
    closes = m.value('storm_ws_slow_consumer_closes_total');
    for (let i = 0; i < 3; i++) await probe();
  } finally {
    sock.destroy();
  }
  t.diagnostic(`slow consumer closed after ${sent} echo requests of 16 KiB; observer RTTs (ms): ${rtts.join(',')}`);
  assert.equal(closes, closes0 + 1);
  assert.ok(rtts.length >= 3, `only ${rtts.length} observer pings completed`);
  const worst = Math.max(...rtts);
  assert.ok(worst < 500, `observer ping/pong RTTs while the slow consumer was flooding: max ${worst} ms (${rtts.join(',')})`);
  assert.equal(obs.closeInfo, null, `observer closed: ${JSON.stringify(obs.closeInfo)}`);
  obs.ws.close(1000);
});
