'use strict';
/*
 * media.test.js — the media routes of the real binary (issue 7, docs/media.md):
 * uploads of the seven accepted types from minimal real sample files made
 * here, type decided by content (lying names and Content-Types refused with
 * 415), size limits (declared and chunked, 413), truncated and aborted
 * uploads (400, nothing left in the data directory), file-name
 * sanitizing, downloads with Range/206/416, ETag/304 and HEAD, delete and
 * read authorization, 401 without a token, the body timeout (408).
 * Small limits (--media-max-image 64k, --media-max-video 256k) keep it fast.
 * The bus subjects (media.upload.requested, media.delete.requested) are
 * covered by test/unit/test_media_service.c on the in-process bus.
 *
 * Every test runs twice, with the same code: on the local-disk backend and
 * on the S3 backend against the S3-compatible server scripts/infra.sh
 * starts (STORM_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY; unset → the S3
 * run FAILS, it is never skipped), with 64 KiB parts so the larger uploads
 * go up in several parts. Only "where do objects live" differs (files under
 * <data>/media/objects, or keys under media/ in the run's own bucket, listed
 * with curl --aws-sigv4); temporary files are under <data>/media/tmp for
 * both. Last, STORM with a wrong S3 secret: /readyz red with the reason
 * logged, /healthz green.
 */
const { describe, test, before, after, afterEach } = require('node:test');
const { execFileSync } = require('node:child_process');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const zlib = require('node:zlib');
const { serverFixture, startServer, runStorm, sanitizerReport, RawSocket, sleep, TEST_ENV } = require('./helpers');

const IMAGE_MAX = 64 * 1024;
const VIDEO_MAX = 256 * 1024;
const ARGS = ['--media-max-image', '64k', '--media-max-video', '256k', '--body-timeout', '1s'];
const S3 = {
  endpoint: process.env.STORM_TEST_S3_ENDPOINT,
  access: process.env.STORM_TEST_S3_ACCESS_KEY,
  secret: process.env.STORM_TEST_S3_SECRET_KEY,
};
const S3_MISSING =
  'STORM_TEST_S3_ENDPOINT, STORM_TEST_S3_ACCESS_KEY and STORM_TEST_S3_SECRET_KEY must name an S3-compatible ' +
  'server (scripts/infra.sh start DIR starts s3rver and writes them to DIR/env; scripts/test-all.sh does it)';
const s3Env = (bucket, secret = S3.secret) => ({
  STORM_MEDIA_BACKEND: 's3',
  MINIO_ENDPOINT: S3.endpoint || '',
  MINIO_ACCESS_KEY: S3.access || '',
  MINIO_SECRET_KEY: secret || '',
  MINIO_BUCKET: bucket,
  MINIO_PART_SIZE: '64k',
});
const EMPTY_SHA256 = crypto.createHash('sha256').digest('hex');

/* The backend the tests below are running on: set by each run's before(). */
let backend; /* 'local' | 's3' */
let bucket;
let fx;
let other; /* a second user's token */

async function waitReady(srv, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await getStatus(srv.port, '/readyz');
    if (last.status === 200) return;
    await sleep(50);
  }
  throw new Error(`/readyz not 200 within ${timeoutMs} ms: ${JSON.stringify(last)}\n${srv.tail()}`);
}

function getStatus(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${p}: no answer`)));
    req.on('error', reject);
  });
}

function defineRun(kind) {
  const runBucket = `storm-bb-${crypto.randomBytes(4).toString('hex')}`;
  const runFx = serverFixture(ARGS, { env: kind === 's3' ? s3Env(runBucket) : { STORM_MEDIA_BACKEND: 'local' } });
  describe(`media on ${kind} storage`, () => {
    before(async () => {
      backend = kind;
      bucket = runBucket;
      fx = runFx;
      if (kind === 's3' && !(S3.endpoint && S3.access && S3.secret)) throw new Error(S3_MISSING);
      await fx.start();
      if (kind === 's3') await waitReady(fx.srv); /* the bucket is created by the start-up probe */
      const env = { ...TEST_ENV, ...process.env };
      const c = await runStorm(['user', 'create', 'mediaother', '--data', fx.srv.dataDir], { env, input: 'other-password-123\n' });
      assert.equal(c.code, 0, c.stderr);
      const t = await runStorm(['token', '--user', 'mediaother', '--data', fx.srv.dataDir], { env });
      assert.equal(t.code, 0, t.stderr);
      assert.ok(!sanitizerReport(c.stderr + t.stderr));
      other = t.stdout.trim();
    });
    afterEach((t) => runFx.check(t));
    after(() => runFx.finish());
    defineTests();
  });
}

/* ------------------------------------------------------------ samples */

function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/* A 1×1 RGBA PNG (decodes: IHDR, zlib IDAT with CRCs, IEND). */
function png1x1() {
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.from([0, 255, 0, 0, 255]))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/* Box helpers for ISO BMFF and RIFF. */
function box(type, payload) {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(8 + payload.length);
  h.write(type, 4, 'latin1');
  return Buffer.concat([h, payload]);
}
function riffChunk(id, payload) {
  const h = Buffer.alloc(8);
  h.write(id, 0, 'latin1');
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload, payload.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

const SAMPLES = {
  /* Baseline 1×1 grayscale JPEG: SOI, APP0 JFIF, DQT, SOF0, 2×DHT, SOS, EOI. */
  jpeg: Buffer.from(
    '/9j/4AAQSkZJRgABAQEAYABgAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==',
    'base64'
  ),
  png: png1x1(),
  /* 1×1 transparent GIF89a. */
  gif: Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64'),
  /* 1×1 lossless WebP (RIFF/WEBP/VP8L). */
  webp: Buffer.from('UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==', 'base64'),
  /* ftyp (isom, compatible isom iso2 avc1 mp41), free, empty mdat. */
  mp4: Buffer.concat([
    box('ftyp', Buffer.concat([Buffer.from('isom', 'latin1'), Buffer.from([0, 0, 2, 0]), Buffer.from('isomiso2avc1mp41', 'latin1')])),
    box('free', Buffer.alloc(0)),
    box('mdat', Buffer.alloc(0)),
  ]),
  /* EBML header (DocType "webm", versions 4/2) then a Segment of unknown size. */
  webm: Buffer.from(
    '1a45dfa39f' + '4286810142f7810142f2810442f381084282847765626d4287810442858102' + '18538067' + '01ffffffffffffff',
    'hex'
  ),
  /* RIFF 'AVI ' with a LIST 'hdrl' holding an 'avih' main header. */
  avi: (() => {
    const avih = riffChunk('avih', Buffer.alloc(56));
    const hdrl = riffChunk('LIST', Buffer.concat([Buffer.from('hdrl', 'latin1'), avih]));
    const body = Buffer.concat([Buffer.from('AVI ', 'latin1'), hdrl]);
    const h = Buffer.alloc(8);
    h.write('RIFF', 0, 'latin1');
    h.writeUInt32LE(body.length, 4);
    return Buffer.concat([h, body]);
  })(),
};
const MIME = { jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp', mp4: 'video/mp4', webm: 'video/webm', avi: 'video/avi' };
const EXT = { jpeg: 'jpg', png: 'png', gif: 'gif', webp: 'webp', mp4: 'mp4', webm: 'webm', avi: 'avi' };

/* ------------------------------------------------------------ helpers */

const BOUNDARY = '----stormMediaTestBoundary7MA4YWxk';

/* A multipart/form-data body. parts: {name, filename?, type?, data}. Header
 * text is latin1 so that raw bytes (NUL) reach the server as they are. */
function form(parts, { close = true } = {}) {
  const out = [];
  for (const p of parts) {
    let h = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) h += `; filename="${p.filename}"`;
    h += '\r\n';
    if (p.type) h += `Content-Type: ${p.type}\r\n`;
    out.push(Buffer.from(h + '\r\n', 'latin1'), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data), Buffer.from('\r\n'));
  }
  if (close) out.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(out);
}

/*
 * One request. body: a Buffer sent with Content-Length, or chunks: an
 * array of Buffers sent with chunked coding. Resolves {status, headers,
 * body (Buffer), json}. Write errors after the response arrived are the
 * server refusing the rest of the body: ignored.
 */
function request(method, p, { token = fx.srv.token, headers = {}, body, chunks, contentType } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (contentType !== undefined) h['Content-Type'] = contentType;
    else if (body || chunks) h['Content-Type'] = `multipart/form-data; boundary=${BOUNDARY}`;
    if (body) h['Content-Length'] = String(body.length);
    const agent = new http.Agent({ keepAlive: false });
    let answered = false;
    const req = http.request({ host: '127.0.0.1', port: fx.port, path: p, method, headers: h, agent }, (res) => {
      answered = true;
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const b = Buffer.concat(parts);
        let json;
        try {
          json = JSON.parse(b.toString('utf8'));
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: b, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${p}: no response within 15 s`)));
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    if (chunks) {
      (async () => {
        for (const c of chunks) {
          if (answered || req.destroyed) break;
          await new Promise((r) => req.write(c, r));
        }
        req.end();
      })();
    } else {
      req.end(body || undefined);
    }
  });
}

const upload = (parts, opts = {}) => request('POST', '/media/upload', { body: form(parts), ...opts });
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

function mediaDir() {
  return path.join(fx.srv.dataDir, 'media');
}
function tmpFiles() {
  return fs.readdirSync(path.join(mediaDir(), 'tmp'));
}
/* The stored objects: files "xx/<id>" under <data>/media/objects, or the
 * keys "media/<id>" of the run's bucket (asked of the S3 server itself). */
function objectFiles() {
  if (backend === 's3') {
    const xml = execFileSync('curl', ['-sS', '--fail-with-body', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${S3.access}:${S3.secret}`,
      '-H', `x-amz-content-sha256: ${EMPTY_SHA256}`, `${S3.endpoint}/${bucket}?prefix=media%2F`]).toString();
    return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
  }
  const root = path.join(mediaDir(), 'objects');
  const out = [];
  for (const d of fs.readdirSync(root)) for (const f of fs.readdirSync(path.join(root, d))) out.push(`${d}/${f}`);
  return out;
}
const OBJECT_RE = { local: /^[0-9a-f]{2}\/[0-9a-f]{32}$/, s3: /^media\/[0-9a-f]{32}$/ };
/* Temporary files are removed right after the answer (or, for an abort,
 * once an in-flight write completes): give it a moment. */
async function expectNoTemp(what) {
  for (let i = 0; i < 50 && tmpFiles().length; i++) await sleep(20);
  assert.deepEqual(tmpFiles(), [], `temporary files left after ${what}`);
}

const KEY_RE = /^[0-9a-f]{32}-[A-Za-z0-9._-]{1,64}$/;

/* The tests, defined once per backend run (defineRun). */
function defineTests() {
  /* -------------------------------------------------------------- uploads */

  for (const kind of Object.keys(SAMPLES)) {
    test(`upload ${kind} → 201 ${MIME[kind]}, download returns the same bytes`, async () => {
      const data = SAMPLES[kind];
      /* The client's Content-Type is deliberately wrong: content decides. */
      const r = await upload([{ name: 'file', filename: `sample.${EXT[kind]}`, type: 'application/octet-stream', data }]);
      assert.equal(r.status, 201, r.body.toString());
      assert.equal(r.json.mime, MIME[kind]);
      assert.equal(r.json.size, data.length);
      assert.equal(r.json.sha256, sha256(data));
      assert.match(r.json.key, KEY_RE);
      assert.ok(r.json.key.endsWith(`-sample.${EXT[kind]}`), r.json.key);
      assert.equal(r.json.url, `/media/${r.json.key}`);
      assert.equal(r.headers.location, `/media/${r.json.key}`);
      const g = await request('GET', r.json.url);
      assert.equal(g.status, 200);
      assert.equal(g.headers['content-type'], MIME[kind]);
      assert.equal(g.headers['content-length'], String(data.length));
      assert.equal(g.headers.etag, `"${sha256(data)}"`);
      assert.equal(g.headers['cache-control'], 'private, max-age=31536000, immutable');
      assert.equal(g.headers['accept-ranges'], 'bytes');
      assert.ok(g.body.equals(data), 'downloaded bytes differ');
      await expectNoTemp('a successful upload');
    });
  }

  test('a form with other fields first and the file last is accepted', async () => {
    const r = await upload([
      { name: 'caption', data: 'hello' },
      { name: 'file', filename: 'x.gif', type: 'image/gif', data: SAMPLES.gif },
    ]);
    assert.equal(r.status, 201, r.body.toString());
    assert.equal(r.json.mime, 'image/gif');
  });

  test('HTML and ELF renamed .png with Content-Type image/png → 415 naming the detected type', async () => {
    const html = Buffer.from('<!DOCTYPE html><html><body><script>alert(1)</script></body></html>');
    const elf = Buffer.concat([Buffer.from('7f454c46020101000000000000000000', 'hex'), Buffer.alloc(48)]);
    const before1 = objectFiles().length;
    for (const [data, detected] of [[html, 'text/html'], [elf, 'application/x-elf'], [Buffer.from('plain text'), 'unknown']]) {
      const r = await upload([{ name: 'file', filename: 'innocent.png', type: 'image/png', data }]);
      assert.equal(r.status, 415, r.body.toString());
      assert.equal(r.json.error.code, 'unsupported_media_type');
      assert.ok(r.json.error.message.includes(detected), r.json.error.message);
    }
    /* An empty file is nothing we accept either. */
    const e = await upload([{ name: 'file', filename: 'empty.png', type: 'image/png', data: Buffer.alloc(0) }]);
    assert.equal(e.status, 415);
    assert.match(e.json.error.message, /unknown/);
    assert.equal(objectFiles().length, before1);
    await expectNoTemp('refused types');
  });

  /* ----------------------------------------------------------------- limits */

  function bigPng(n) {
    return Buffer.concat([SAMPLES.png.subarray(0, 16), Buffer.alloc(n - 16, 7)]);
  }
  function bigMp4(n) {
    return Buffer.concat([SAMPLES.mp4, Buffer.alloc(n - SAMPLES.mp4.length, 9)]);
  }

  test('size limits: exactly the limit passes; over it → 413 (declared and chunked), nothing left', async () => {
    const okImg = await upload([{ name: 'file', filename: 'max.png', data: bigPng(IMAGE_MAX) }]);
    assert.equal(okImg.status, 201, okImg.body.toString());
    assert.equal(okImg.json.size, IMAGE_MAX);
    const okVid = await request('POST', '/media/upload', { chunks: chunked(form([{ name: 'file', filename: 'max.mp4', data: bigMp4(VIDEO_MAX) }])) });
    assert.equal(okVid.status, 201, okVid.body.toString());
    const before1 = objectFiles().length;

    /* Declared: over the route limit (largest kind + form overhead) before any byte is read. */
    const s = await RawSocket.connect(fx.port);
    await s.write(
      `POST /media/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fx.srv.token}\r\n` +
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${VIDEO_MAX + 64 * 1024 + 1}\r\n\r\n`
    );
    const huge = await s.readResponse();
    s.destroy();
    assert.equal(huge.status, 413, huge.text);
    /* Declared: an image whose Content-Length exceeds the image limit (+ form overhead). */
    const img = await upload([{ name: 'file', filename: 'big.png', data: bigPng(IMAGE_MAX + 70 * 1024) }]);
    assert.equal(img.status, 413, img.body.toString());
    assert.match(img.json.error.message, /image files are limited to 65536 bytes/);
    /* Declared length within the overhead, but the file itself one byte over. */
    const img1 = await upload([{ name: 'file', filename: 'big1.png', data: bigPng(IMAGE_MAX + 1) }]);
    assert.equal(img1.status, 413, img1.body.toString());
    /* Undeclared (chunked): caught while streaming. */
    const ci = await request('POST', '/media/upload', { chunks: chunked(form([{ name: 'file', filename: 'c.png', data: bigPng(IMAGE_MAX + 1) }])) });
    assert.equal(ci.status, 413, ci.body.toString());
    assert.match(ci.json.error.message, /image files/);
    const cv = await request('POST', '/media/upload', { chunks: chunked(form([{ name: 'file', filename: 'c.mp4', data: bigMp4(VIDEO_MAX + 100 * 1024) }])) });
    assert.equal(cv.status, 413, cv.body.toString());
    assert.match(cv.json.error.message, /video files are limited to 262144 bytes/);
    assert.equal(objectFiles().length, before1);
    await expectNoTemp('refused oversize uploads');
  });

  /* Splits a body into 16 KiB pieces (sent as chunks). */
  function chunked(b, size = 16 * 1024) {
    const out = [];
    for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
    return out;
  }

  /* ---------------------------------------------------- broken uploads */

  test('truncated multipart (no closing boundary) → 400 and no object or temp file', async () => {
    const before1 = objectFiles().length;
    const body = form([{ name: 'file', filename: 't.png', data: bigPng(20000) }], { close: false });
    const r = await request('POST', '/media/upload', { body });
    assert.equal(r.status, 400, r.body.toString());
    assert.equal(r.json.error.code, 'bad_multipart');
    assert.match(r.json.error.message, /truncated/);
    /* Cut inside the file data, not even a delimiter after it. */
    const cut = form([{ name: 'file', filename: 't.png', data: bigPng(20000) }]).subarray(0, 10000);
    const r2 = await request('POST', '/media/upload', { body: cut });
    assert.equal(r2.status, 400);
    assert.equal(objectFiles().length, before1);
    await expectNoTemp('truncated uploads');
  });

  test('malformed forms → 400: no boundary, not multipart, no file field, two file fields, bad part headers', async () => {
    const good = form([{ name: 'file', filename: 'a.png', data: SAMPLES.png }]);
    let r = await request('POST', '/media/upload', { body: good, contentType: 'multipart/form-data' });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /boundary/);
    r = await request('POST', '/media/upload', { body: good, contentType: 'image/png' });
    assert.equal(r.status, 400);
    r = await upload([{ name: 'other', filename: 'a.png', data: SAMPLES.png }]);
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /no "file" field/);
    r = await upload([
      { name: 'file', filename: 'a.png', data: SAMPLES.png },
      { name: 'file', filename: 'b.png', data: SAMPLES.png },
    ]);
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /only one file/);
    r = await request('POST', '/media/upload', { body: Buffer.from(`--${BOUNDARY}\r\nNo colon here\r\n\r\nx\r\n--${BOUNDARY}--\r\n`) });
    assert.equal(r.status, 400);
    r = await request('POST', '/media/upload', { body: Buffer.from(`--${BOUNDARY}\r\nX: ${'a'.repeat(9000)}\r\n\r\nx\r\n--${BOUNDARY}--\r\n`) });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /headers too large/);
    await expectNoTemp('malformed forms');
  });

  test('an upload aborted by the client mid-body leaves no temp file and no object', async () => {
    const before1 = objectFiles().length;
    const body = form([{ name: 'file', filename: 'abort.mp4', data: bigMp4(200 * 1024) }]);
    const s = await RawSocket.connect(fx.port);
    await s.write(
      `POST /media/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fx.srv.token}\r\n` +
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`
    );
    await s.write(body.subarray(0, 150 * 1024));
    /* The temporary file exists while the upload runs... */
    for (let i = 0; i < 50 && tmpFiles().length === 0; i++) await sleep(20);
    assert.equal(tmpFiles().length, 1, 'no temporary file while uploading');
    s.destroy();
    /* ...and is gone once the client is. */
    await expectNoTemp('an aborted upload');
    assert.equal(objectFiles().length, before1);
  });

  test('a stalled upload times out (408, --body-timeout 1s) and leaves nothing', async () => {
    const body = form([{ name: 'file', filename: 'slow.png', data: bigPng(30000) }]);
    const s = await RawSocket.connect(fx.port);
    await s.write(
      `POST /media/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fx.srv.token}\r\n` +
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`
    );
    await s.write(body.subarray(0, 20000));
    const res = await s.readResponse({ timeoutMs: 4000 });
    s.destroy();
    assert.equal(res.status, 408);
    await expectNoTemp('a timed-out upload');
  });

  test('file names: path traversal and NUL bytes neutralized in the key; storage paths are hex only', async () => {
    const cases = [
      ['../../etc/passwd', '-passwd'],
      ['..\\..\\boot.ini', '-boot.ini'],
      ['a\u0000b.png', '-a_b.png'],
      ['.htaccess', '-htaccess'],
      ['my photo (1).png', '-my_photo__1_.png'],
      ['', '-file'],
    ];
    for (const [name, suffix] of cases) {
      const r = await upload([{ name: 'file', filename: name, data: SAMPLES.png }]);
      assert.equal(r.status, 201, `${JSON.stringify(name)}: ${r.body.toString()}`);
      assert.match(r.json.key, KEY_RE);
      assert.ok(r.json.key.endsWith(suffix), `${JSON.stringify(name)} gave ${r.json.key}`);
      const g = await request('GET', r.json.url);
      assert.equal(g.status, 200);
    }
    for (const f of objectFiles()) assert.match(f, OBJECT_RE[backend]);
    assert.ok(!fs.existsSync(path.join(fx.srv.dataDir, 'etc')));
    assert.ok(!fs.existsSync(path.join(mediaDir(), 'passwd')));
  });

  /* -------------------------------------------------------------- downloads */

  test('Range → 206 with Content-Range; suffix and open ranges; unsatisfiable → 416; several → 200', async () => {
    const data = bigPng(5000);
    const up = await upload([{ name: 'file', filename: 'r.png', data }]);
    assert.equal(up.status, 201);
    const get = (range) => request('GET', up.json.url, { headers: { Range: range } });
    let r = await get('bytes=10-19');
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], 'bytes 10-19/5000');
    assert.equal(r.headers['content-length'], '10');
    assert.ok(r.body.equals(data.subarray(10, 20)));
    r = await get('bytes=4990-');
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], 'bytes 4990-4999/5000');
    assert.ok(r.body.equals(data.subarray(4990)));
    r = await get('bytes=-7');
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(data.subarray(4993)));
    r = await get('bytes=4000-999999');
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], 'bytes 4000-4999/5000');
    r = await get('bytes=5000-');
    assert.equal(r.status, 416);
    assert.equal(r.headers['content-range'], 'bytes */5000');
    r = await get('bytes=-0');
    assert.equal(r.status, 416);
    r = await get('bytes=0-1,5-6');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 5000);
    r = await get('items=0-1');
    assert.equal(r.status, 200);
  });

  test('ETag / If-None-Match → 304 without a body; HEAD has the headers only', async () => {
    const up = await upload([{ name: 'file', filename: 'e.gif', data: SAMPLES.gif }]);
    const etag = `"${sha256(SAMPLES.gif)}"`;
    let r = await request('GET', up.json.url, { headers: { 'If-None-Match': etag } });
    assert.equal(r.status, 304);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers.etag, etag);
    r = await request('GET', up.json.url, { headers: { 'If-None-Match': `"nope", W/${etag}` } });
    assert.equal(r.status, 304);
    r = await request('GET', up.json.url, { headers: { 'If-None-Match': '"other"' } });
    assert.equal(r.status, 200);
    r = await request('HEAD', up.json.url);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(SAMPLES.gif.length));
    assert.equal(r.body.length, 0);
    /* The connection stays usable after HEAD and 304: a keep-alive pair. */
    const s = await RawSocket.connect(fx.port);
    const auth = `Authorization: Bearer ${fx.srv.token}\r\n`;
    await s.write(`HEAD ${up.json.url} HTTP/1.1\r\nHost: x\r\n${auth}\r\nGET ${up.json.url} HTTP/1.1\r\nHost: x\r\n${auth}If-None-Match: ${etag}\r\n\r\nGET ${up.json.url} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
    const a = await s.readResponse({ head: true });
    const b = await s.readResponse();
    const c = await s.readResponse();
    s.destroy();
    assert.deepEqual([a.status, b.status, c.status], [200, 304, 200]);
    assert.ok(c.body.equals(SAMPLES.gif));
  });

  test('a larger object streams intact (several reads, backpressure)', async () => {
    const data = bigMp4(VIDEO_MAX);
    for (let i = 100; i < data.length; i += 997) data[i] = i & 0xff;
    const up = await request('POST', '/media/upload', { chunks: chunked(form([{ name: 'file', filename: 'big.mp4', data }]), 7000) });
    assert.equal(up.status, 201, up.body.toString());
    assert.equal(up.json.sha256, sha256(data));
    const g = await request('GET', up.json.url);
    assert.equal(g.status, 200);
    assert.equal(sha256(g.body), sha256(data));
  });

  /* -------------------------------------------------------- authorization */

  test('unauthenticated → 401 on every media route', async () => {
    const up = await upload([{ name: 'file', filename: 'p.png', data: SAMPLES.png }]);
    assert.equal(up.status, 201);
    for (const [m, p, opts] of [
      ['POST', '/media/upload', { body: form([{ name: 'file', filename: 'p.png', data: SAMPLES.png }]) }],
      ['GET', up.json.url, {}],
      ['DELETE', up.json.url, {}],
    ]) {
      const r = await request(m, p, { ...opts, token: null });
      assert.equal(r.status, 401, `${m} ${p}`);
      assert.match(r.headers['www-authenticate'], /^Bearer/);
      const bad = await request(m, p, { ...opts, token: 'not.a.token' });
      assert.equal(bad.status, 401, `${m} ${p} with a bad token`);
    }
    await expectNoTemp('refused unauthenticated uploads');
  });

  test('other users get 404 for GET and DELETE; the uploader deletes → 204, then 404', async () => {
    const up = await upload([{ name: 'file', filename: 'mine.webp', data: SAMPLES.webp }]);
    assert.equal(up.status, 201);
    const before1 = objectFiles().length;
    let r = await request('GET', up.json.url, { token: other });
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'media_not_found');
    r = await request('DELETE', up.json.url, { token: other });
    assert.equal(r.status, 404);
    r = await request('GET', up.json.url);
    assert.equal(r.status, 200, 'a refused delete must not delete');
    r = await request('DELETE', up.json.url);
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
    assert.equal(objectFiles().length, before1 - 1, 'the object file was not removed');
    r = await request('GET', up.json.url);
    assert.equal(r.status, 404);
    r = await request('DELETE', up.json.url);
    assert.equal(r.status, 404);
  });

  test('keys that are not media keys → 404 (never a path)', async () => {
    for (const k of ['..%2F..%2Fetc%2Fpasswd', 'abc', '0123456789abcdef0123456789abcdef', '0123456789abcdef0123456789abcdef-.x', 'upload']) {
      const r = await request('GET', `/media/${k}`);
      assert.equal(r.status, 404, k);
    }
    const r = await request('GET', '/media/0123456789abcdef0123456789abcdef-unknown.png');
    assert.equal(r.status, 404);
  });
}

defineRun('local');
defineRun('s3');

/* ---------------------------------------------- S3 credentials at start-up */

describe('S3 backend with a wrong secret', () => {
  test('/readyz is red with the reason in the log, /healthz stays 200, nothing waits for an upload', async () => {
    if (!(S3.endpoint && S3.access && S3.secret)) throw new Error(S3_MISSING);
    const srv = await startServer([], { env: s3Env(`storm-bb-bad-${crypto.randomBytes(4).toString('hex')}`, 'not-the-secret'), token: false });
    try {
      /* The probe runs at start-up, before any upload. */
      let line;
      for (let i = 0; i < 100 && !line; i++) {
        line = srv.logs().find((l) => l.level === 'error' && /S3 refused our credentials \(403 SignatureDoesNotMatch/.test(l.msg || ''));
        if (!line) await sleep(50);
      }
      assert.ok(line, `no credential error in the log:\n${srv.tail()}`);
      assert.match(line.msg, /MINIO_SECRET_KEY/);
      assert.ok(!line.msg.includes('not-the-secret'), 'the secret must not be logged');
      const r = await getStatus(srv.port, '/readyz');
      assert.equal(r.status, 503, r.body);
      assert.equal(JSON.parse(r.body).checks.media_storage, 'down');
      const h = await getStatus(srv.port, '/healthz');
      assert.equal(h.status, 200);
    } finally {
      await srv.stop();
    }
  });
});
