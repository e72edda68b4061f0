'use strict';
/*
 * ws_badinput.test.js — hostile WebSocket input over raw TCP, frames built
 * by hand. Every violation must get the RFC 6455 close code in the server's
 * first close frame (parsed from the raw bytes after the 101 and the hello)
 * and the TCP connection must end; right after, a normal `ws` client must
 * still get hello and a pong. Server limit: --ws-max-message 1024.
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  serverFixture,
  RawSocket,
  WsClient,
  wsConnectRaw,
  handshakeRequest,
  buildFrame,
  closePayload,
  errorBody,
  frameSummary,
  show,
  sleep,
} = require('./helpers');

const fx = serverFixture(['--ws-max-message', '1024']);
before(fx.start);
afterEach(fx.check);
after(fx.finish);

/* A second, normal client: hello then ping/pong. */
async function assertWsStillServing() {
  const c = await WsClient.open(fx.srv.wsUrl());
  try {
    const h = await c.next();
    assert.equal(h.op, 'hello', JSON.stringify(h));
    assert.deepEqual(await c.request({ op: 'ping', ref: 'after' }), { op: 'pong', ref: 'after' });
  } finally {
    c.ws.close(1000);
    await c.waitClose(3000).catch(() => c.terminate());
  }
}

/*
 * Opens a raw session, writes `bytes`, expects a close frame with `code`
 * and the TCP connection to end. Returns the close frame.
 */
async function expectClose(bytes, code, what) {
  const { sock } = await wsConnectRaw(fx.srv);
  try {
    for (const b of Array.isArray(bytes) ? bytes : [bytes]) await sock.write(b);
    const { close, before: earlier } = await sock.readUntilClose(3000);
    assert.equal(
      close.code,
      code,
      `${what}: expected close ${code}, got ${JSON.stringify(frameSummary(close))}; frames before it: ${JSON.stringify(earlier.map(frameSummary))}`
    );
    assert.ok(await sock.waitClosed(3000), `${what}: TCP still open 3 s after close ${close.code}`);
    return close;
  } finally {
    sock.destroy();
    await assertWsStillServing();
  }
}

const text = (s, o = {}) => buildFrame({ opcode: 0x1, payload: s, ...o });
const PING_OP = JSON.stringify({ op: 'ping', ref: 1 });

test('handshake without an access token → 401 JSON error with WWW-Authenticate: Bearer', async () => {
  const s = await RawSocket.connect(fx.port);
  try {
    await s.write(handshakeRequest());
    const r = await s.readResponse();
    assert.equal(r.status, 401, show(r.raw));
    assert.match(r.header('www-authenticate') || '', /^Bearer\b/, show(r.raw));
    errorBody(r);
  } finally {
    s.destroy();
  }
  await assertWsStillServing();
});

test('handshake with a forged access token → 401', async () => {
  const t = fx.srv.token.split('.');
  const sig = t[2];
  const forged = `${t[0]}.${t[1]}.${(sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)}`;
  for (const tok of [forged, 'not-a-jwt']) {
    const s = await RawSocket.connect(fx.port);
    try {
      await s.write(handshakeRequest({ token: tok }));
      const r = await s.readResponse();
      assert.equal(r.status, 401, `token ${tok}: ${show(r.raw)}`);
      errorBody(r);
    } finally {
      s.destroy();
    }
  }
  await assertWsStillServing();
});

test('the token in Authorization: Bearer works as well as ?access_token=', async () => {
  const s = await RawSocket.connect(fx.port);
  try {
    await s.write(handshakeRequest({ extra: `Authorization: Bearer ${fx.srv.token}\r\n` }));
    const r = await s.readResponse();
    assert.equal(r.status, 101, show(r.raw));
  } finally {
    s.destroy();
  }
});

test('WebSocket handshake over HTTP/1.0 → 400', async () => {
  const s = await RawSocket.connect(fx.port);
  try {
    await s.write(handshakeRequest({ token: fx.srv.token, httpVersion: '1.0' }));
    const r = await s.readResponse();
    assert.equal(r.status, 400, show(r.raw));
    errorBody(r);
  } finally {
    s.destroy();
  }
  await assertWsStillServing();
});

test('handshake without Sec-WebSocket-Key → 400 JSON error', async () => {
  const s = await RawSocket.connect(fx.port);
  try {
    await s.write(handshakeRequest({ omitKey: true, token: fx.srv.token }));
    const r = await s.readResponse();
    assert.equal(r.status, 400, show(r.raw));
    errorBody(r);
  } finally {
    s.destroy();
  }
  await assertWsStillServing();
});

test('handshake with Sec-WebSocket-Version: 8 → 426 with Sec-WebSocket-Version: 13', async () => {
  const s = await RawSocket.connect(fx.port);
  try {
    await s.write(handshakeRequest({ version: '8', token: fx.srv.token }));
    const r = await s.readResponse();
    assert.equal(r.status, 426, show(r.raw));
    assert.equal(r.header('sec-websocket-version'), '13', show(r.raw));
    errorBody(r);
  } finally {
    s.destroy();
  }
  await assertWsStillServing();
});

test('raw session sanity: a masked ping op is answered (so the failures below are about the bad frame)', async () => {
  const { sock, hello } = await wsConnectRaw(fx.srv);
  try {
    assert.equal(hello.op, 'hello');
    await sock.write(text(PING_OP));
    const f = await sock.readFrame();
    assert.equal(f.opcode, 0x1, JSON.stringify(frameSummary(f)));
    assert.deepEqual(JSON.parse(f.payload.toString('utf8')), { op: 'pong', ref: 1 });
  } finally {
    sock.destroy();
  }
});

/*
 * A frame whose answer is queued by the read, then a TCP reset in the same
 * loop turn: the server read the frame, queued the pong, read the reset and
 * closed the connection, which must not be freed while its queued output
 * is on the flush list (a use-after-free the ASan suite caught here).
 * 100 rounds, then the server still serves.
 */
test('a frame, then a TCP reset at once, 100 times → the server keeps serving (no use after free)', async () => {
  for (let i = 0; i < 100; i++) {
    const { sock } = await wsConnectRaw(fx.srv);
    sock.sock.write(Buffer.concat([text(PING_OP), text(PING_OP)]));
    sock.sock.resetAndDestroy();
  }
  await sleep(200);
  await assertWsStillServing();
});

test('unmasked client frame → close 1002', async () => {
  await expectClose(text(PING_OP, { mask: false }), 1002, 'unmasked');
});

test('RSV1 set (no extension negotiated) → close 1002', async () => {
  await expectClose(text(PING_OP, { rsv: 4 }), 1002, 'rsv1');
});

test('reserved opcode 0x3 → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x3, payload: 'x' }), 1002, 'opcode 3');
});

test('reserved control opcode 0xB → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0xb, payload: 'x' }), 1002, 'opcode 0xB');
});

test('fragmented control frame (ping with FIN=0) → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x9, fin: false, payload: 'p' }), 1002, 'fragmented ping');
});

test('control frame with a 126-byte payload → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x9, payload: Buffer.alloc(126, 0x61) }), 1002, 'ping 126 bytes');
});

test('continuation frame with no message started → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x0, payload: PING_OP }), 1002, 'orphan continuation');
});

test('new text frame while a fragmented message is open → close 1002', async () => {
  await expectClose([text('{"op":', { fin: false }), text(PING_OP)], 1002, 'interleaved data frame');
});

test('message over --ws-max-message 1024 in one frame → close 1009', async () => {
  const big = JSON.stringify({ op: 'echo', data: 'y'.repeat(1100) });
  await expectClose(text(big), 1009, 'one 1.1 KiB frame');
});

test('message over 1024 across fragments (each under the limit) → close 1009', async () => {
  const big = JSON.stringify({ op: 'echo', data: 'y'.repeat(1100) });
  await expectClose(
    [text(big.slice(0, 600), { fin: false }), buildFrame({ opcode: 0x0, payload: big.slice(600) })],
    1009,
    'two fragments totalling 1.1 KiB'
  );
});

test('a message of exactly 1024 bytes is accepted', async () => {
  const { sock } = await wsConnectRaw(fx.srv);
  try {
    const head = '{"op":"echo","ref":5,"data":"';
    const msg = head + 'z'.repeat(1024 - head.length - 2) + '"}';
    assert.equal(Buffer.byteLength(msg), 1024);
    await sock.write(text(msg));
    const f = await sock.readFrame();
    assert.equal(f.opcode, 0x1, JSON.stringify(frameSummary(f)));
    assert.equal(JSON.parse(f.payload.toString('utf8')).ref, 5);
  } finally {
    sock.destroy();
  }
});

test('invalid UTF-8 text (bytes C3 28) → close 1007', async () => {
  await expectClose(text(Buffer.from([0x22, 0xc3, 0x28, 0x22])), 1007, 'C3 28');
});

test('invalid UTF-8 split across fragments → close 1007', async () => {
  await expectClose(
    [text(Buffer.from([0x22, 0xc3]), { fin: false }), buildFrame({ opcode: 0x0, payload: Buffer.from([0x28, 0x22]) })],
    1007,
    'C3 | 28'
  );
});

test('valid UTF-8 character split across fragments is accepted', async () => {
  const { sock } = await wsConnectRaw(fx.srv);
  try {
    const msg = Buffer.from(JSON.stringify({ op: 'echo', data: 'é', ref: 'u' }), 'utf8');
    const cut = msg.indexOf(0xc3) + 1; /* between C3 and A9 */
    await sock.write(text(msg.subarray(0, cut), { fin: false }));
    await sock.write(buildFrame({ opcode: 0x0, payload: msg.subarray(cut) }));
    const f = await sock.readFrame();
    assert.deepEqual(JSON.parse(f.payload.toString('utf8')), { op: 'echo', data: 'é', ref: 'u' }, JSON.stringify(frameSummary(f)));
  } finally {
    sock.destroy();
  }
});

test('close frame with code 1005 → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x8, payload: closePayload(1005) }), 1002, 'close 1005');
});

test('close frame with code 999 → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x8, payload: closePayload(999) }), 1002, 'close 999');
});

test('close frame with a 1-byte payload → close 1002', async () => {
  await expectClose(buildFrame({ opcode: 0x8, payload: Buffer.from([0x03]) }), 1002, 'close 1 byte');
});

test('close frame with no payload → the server answers a close (no code, or 1000)', async () => {
  const { sock } = await wsConnectRaw(fx.srv);
  try {
    await sock.write(buildFrame({ opcode: 0x8 }));
    const { close } = await sock.readUntilClose(3000);
    assert.ok(close.code === null || close.code === 1000, JSON.stringify(frameSummary(close)));
    assert.ok(await sock.waitClosed(3000), 'TCP still open after the close handshake');
  } finally {
    sock.destroy();
  }
});

test('frames split byte by byte across TCP writes are reassembled', async () => {
  const { sock } = await wsConnectRaw(fx.srv);
  try {
    const f = text(PING_OP);
    for (const b of f) {
      await sock.write(Buffer.from([b]));
      await sleep(1);
    }
    const r = await sock.readFrame();
    assert.deepEqual(JSON.parse(r.payload.toString('utf8')), { op: 'pong', ref: 1 });
  } finally {
    sock.destroy();
  }
});
