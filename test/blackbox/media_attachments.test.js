'use strict';
/*
 * media_attachments.test.js — issue 7 item 7 on the real binary (all
 * services in one process, embedded SQLite and local storage): a message
 * may carry media keys its author uploaded, the channel's members may then
 * download them, everyone else gets 404 (docs/media.md, "Attachments and
 * who may read"). Also the HTTP details of downloads: Content-Disposition
 * with filename and filename* (RFC 6266/8187) and If-Range (RFC 9110
 * 13.1.5).
 *
 * Decided and tested here: a deleted message no longer grants access;
 * leaving the channel withdraws it; an object its uploader deleted is 404
 * for everyone, even where a message still names it (the message keeps
 * the key as text).
 *
 * Also in the cluster run (STORM_TEST_TOPOLOGY=cluster): objects in the
 * cluster's S3 server, metadata and attachments in PostgreSQL, requests
 * spread over 3 gateways and 2 media replicas.
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { serverFixture, apiCall, newUser } = require('./helpers');

const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '100000', '--auth-burst', '100000'];
const fx = serverFixture([...FAST, '--media-max-image', '64k'], { token: false });
afterEach(fx.check);
after(fx.finish);

let counter = 0;
const uname = (p) => `${p}${process.pid % 1000}a${++counter}`;
const J = (v) => JSON.stringify(v);

/* A minimal valid GIF (1x1). */
const GIF = Buffer.from([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21, 0xf9, 4,
  1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 1, 0x44, 0, 0x3b]);
const BOUNDARY = '----stormAttachmentsBoundary';

function form(filename, data) {
  return Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="`),
    Buffer.from(filename, 'utf8'), /* raw UTF-8, as browsers send it */
    Buffer.from('"\r\nContent-Type: image/gif\r\n\r\n'),
    data,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

/* One request: resolves {status, headers, body (Buffer), json}. */
function request(method, p, token, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers, Authorization: `Bearer ${token}` };
    if (body) {
      h['Content-Type'] = `multipart/form-data; boundary=${BOUNDARY}`;
      h['Content-Length'] = String(body.length);
    }
    const req = http.request({ host: '127.0.0.1', port: fx.port, path: p, method, headers: h, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const b = Buffer.concat(parts);
        let json = null;
        try {
          json = JSON.parse(b.toString('utf8'));
        } catch {
          /* bytes */
        }
        resolve({ status: res.statusCode, headers: res.headers, body: b, json });
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function upload(u, filename = 'cat.gif') {
  const r = await request('POST', '/media/upload', u.token, { body: form(filename, GIF) });
  assert.equal(r.status, 201, `upload: ${r.status} ${r.body}`);
  return r.json;
}

const download = (u, key, headers) => request('GET', `/media/${key}`, u.token, { headers });

function expect404(r, what) {
  assert.equal(r.status, 404, `${what}: ${r.status} ${r.body}`);
  assert.equal(r.json.error.code, 'media_not_found', `${what}: ${r.body}`);
}

async function api(method, p, u, body) {
  return apiCall(fx.port, method, p, u.token, body);
}

function expectStatus(r, status, code, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  if (code) assert.equal(r.json && r.json.error && r.json.error.code, code, `${what}: ${r.text}`);
  return r.json;
}

async function post(u, ch, attachments, status = 201, code = null) {
  return expectStatus(await api('POST', `/channels/${ch.id}/messages`, u, { body: 'look', attachments }), status, code,
    `${u.username} posts ${J(attachments)}`);
}

let alice, bob, carol, mallory, ch;

before(async () => {
  await fx.start();
  [alice, bob, carol, mallory] = await Promise.all(['alice', 'bob', 'carol', 'mallory'].map((p) => newUser(fx.port, uname(p))));
  ch = expectStatus(await api('POST', '/channels', alice, { name: uname('pics'), private: false }), 201, null, 'create').channel;
  for (const u of [bob, mallory]) expectStatus(await api('POST', `/channels/${ch.id}/join`, u), 200, null, 'join');
});

test('an attached key is readable by the members of the channel, 404 for anyone else', async () => {
  const { key } = await upload(alice);
  expect404(await download(bob, key), 'bob before any message carries it');
  const m = await post(alice, ch, [key]);
  let r = await download(bob, key);
  assert.equal(r.status, 200, `bob downloads: ${r.status} ${r.body}`);
  assert.deepEqual(r.body, GIF);
  assert.equal(r.headers['content-type'], 'image/gif');
  expect404(await download(carol, key), 'carol (not a member)');
  /* the same answer as a key that does not exist */
  expect404(await download(carol, `${'0'.repeat(32)}-cat.gif`), 'an unknown key');
  /* a deleted message no longer grants access; the uploader still reads */
  expectStatus(await api('DELETE', `/channels/${ch.id}/messages/${m.id}`, alice), 204, null, 'delete message');
  expect404(await download(bob, key), 'bob after the message was deleted');
  r = await download(alice, key);
  assert.equal(r.status, 200);
});

test('a key the author did not upload is refused: 400 invalid_attachments, nothing stored', async () => {
  const { key } = await upload(alice);
  await post(mallory, ch, [key], 400, 'invalid_attachments');
  await post(mallory, ch, [`${'a'.repeat(32)}-made-up.gif`], 400, 'invalid_attachments');
  await post(mallory, ch, ['not a key'], 400, 'invalid_attachments');
  /* one bad key among good ones refuses the whole message */
  const own = await upload(mallory);
  await post(mallory, ch, [own.key, key], 400, 'invalid_attachments');
  const hist = expectStatus(await api('GET', `/channels/${ch.id}/messages?limit=100`, bob), 200, null, 'history');
  for (const msg of hist.messages) assert.ok(!(msg.attachments || []).includes(key), J(msg));
  expect404(await download(bob, key), 'never attached');
  /* her own key alone is fine, and the uploader of another's key still reads it */
  await post(mallory, ch, [own.key]);
  assert.equal((await download(alice, own.key)).status, 200);
});

test('leaving the channel withdraws access; a deleted object is 404 even where a message names it', async () => {
  const dave = await newUser(fx.port, uname('dave'));
  expectStatus(await api('POST', `/channels/${ch.id}/join`, dave), 200, null, 'join');
  const a = await upload(alice);
  const b = await upload(alice);
  await post(alice, ch, [a.key, b.key]);
  assert.equal((await download(dave, a.key)).status, 200);
  expectStatus(await api('POST', `/channels/${ch.id}/leave`, dave), 200, null, 'leave');
  expect404(await download(dave, a.key), 'dave after leaving');
  assert.equal((await request('DELETE', `/media/${b.key}`, alice.token)).status, 204);
  expect404(await download(bob, b.key), 'bob: object deleted by its uploader');
  expect404(await download(alice, b.key), 'alice: her deleted object');
  assert.equal((await download(bob, a.key)).status, 200, 'the other attachment is still there');
});

test('If-Range: a matching strong ETag gets the range (206), anything else the whole object (200)', async () => {
  const { key, sha256 } = await upload(alice);
  const etag = `"${sha256}"`;
  let r = await download(alice, key, { Range: 'bytes=0-3', 'If-Range': etag });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes 0-3/${GIF.length}`);
  assert.deepEqual(r.body, GIF.subarray(0, 4));
  for (const other of [`"${'0'.repeat(64)}"`, `W/${etag}`, 'Sat, 01 Jan 2000 00:00:00 GMT']) {
    r = await download(alice, key, { Range: 'bytes=0-3', 'If-Range': other });
    assert.equal(r.status, 200, `If-Range ${other}`);
    assert.deepEqual(r.body, GIF);
    assert.equal(r.headers['content-range'], undefined);
  }
  /* a mismatch also overrides an unsatisfiable range: the whole object */
  r = await download(alice, key, { Range: 'bytes=9999-', 'If-Range': '"x"' });
  assert.equal(r.status, 200);
  r = await download(alice, key, { Range: 'bytes=9999-', 'If-Range': etag });
  assert.equal(r.status, 416);
  /* without Range, If-Range changes nothing */
  r = await download(alice, key, { 'If-Range': '"x"' });
  assert.equal(r.status, 200);
});

test('Content-Disposition: filename (ASCII fallback) and filename* (RFC 8187) from the sanitized name', async () => {
  let { key } = await upload(alice, 'holiday.gif');
  let r = await download(alice, key);
  assert.equal(r.headers['content-disposition'], `inline; filename="holiday.gif"; filename*=UTF-8''holiday.gif`);
  /* a non-ASCII name: each UTF-8 byte and the space became '_' when the key was made */
  ({ key } = await upload(alice, 'héllo wörld.gif'));
  assert.ok(key.endsWith('-h__llo_w__rld.gif'), key);
  r = await download(alice, key);
  assert.equal(r.headers['content-disposition'], `inline; filename="h__llo_w__rld.gif"; filename*=UTF-8''h__llo_w__rld.gif`);
  /* on a 206 too */
  r = await download(alice, key, { Range: 'bytes=0-0' });
  assert.equal(r.status, 206);
  assert.match(r.headers['content-disposition'], /^inline; filename="h__llo_w__rld\.gif"/);
});
