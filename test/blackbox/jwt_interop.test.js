'use strict';
/*
 * jwt_interop.test.js — STORM's HS256 JWTs (src/auth/jwt.c) against an
 * independent implementation: Node's built-in crypto (HMAC-SHA256/512,
 * base64url) and JSON, no JWT package.
 *
 * The C side is test/blackbox/jwt_tool.c, compiled here on the fly against
 * <build>/libstorm.a, where <build> is STORM_BUILD_DIR, else the directory of
 * STORM_BIN (so the ASan run, STORM_BIN=build/asan/storm, tests the ASan
 * library), else "build". A build directory named "asan" (or
 * STORM_SANITIZE=1) compiles the tool with -fsanitize=address,undefined, and
 * any sanitizer report fails the test.
 *
 * 1. C signs → Node checks the header, the HMAC and the claims exactly.
 * 2. Node signs → C verifies and returns exactly those claims.
 * 3. Node-made hostile variants → C rejects each with the expected error.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD_DIR = path.resolve(
  ROOT,
  process.env.STORM_BUILD_DIR ||
    (process.env.STORM_BIN ? path.dirname(path.resolve(ROOT, process.env.STORM_BIN)) : 'build'),
);
const SANITIZE = process.env.STORM_SANITIZE === '1' || path.basename(BUILD_DIR) === 'asan';
const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'runtime error:', 'ERROR: LeakSanitizer'];

const NOW = 1700000000;
const ISSUER = 'storm';
const CUR = Buffer.from('current-secret-0123456789abcdef!');
const PREV = crypto.createHash('sha256').update('previous').digest(); // 32 arbitrary bytes
const OTHER = Buffer.from('a-secret-this-server-never-configured');

let tmp;
let tool;

before(() => {
  const lib = path.join(BUILD_DIR, 'libstorm.a');
  assert.ok(fs.existsSync(lib), `${lib} is missing: run make (or make BUILD=asan) first`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-jwt-'));
  tool = path.join(tmp, 'jwt_tool');
  const libs = execFileSync('pkg-config', ['--libs', 'libuv', 'jansson', 'libsodium', 'libcrypto'], {
    encoding: 'utf8',
  })
    .trim()
    .split(/\s+/);
  const san = SANITIZE ? ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-g'] : [];
  const r = spawnSync(
    process.env.CC || 'cc',
    ['-std=c17', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-Werror', ...san, '-Isrc',
      'test/blackbox/jwt_tool.c', lib, ...libs, '-lm', '-o', tool],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `compiling jwt_tool failed:\n${r.stderr}`);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function run(args) {
  const r = spawnSync(tool, args, { encoding: 'utf8' });
  for (const m of SANITIZER_MARKERS) assert.ok(!r.stderr.includes(m), `sanitizer report:\n${r.stderr}`);
  return r;
}

function cSign(secret, { sub, name, jti, iat, nbf = 0, exp }, issuer = ISSUER) {
  const r = run(['sign', secret.toString('hex'), issuer, sub, name, jti, String(iat), String(nbf), String(exp)]);
  assert.equal(r.status, 0, `jwt_tool sign failed: ${r.stderr}`);
  return r.stdout.trim();
}

function cVerify(token, { cur = CUR, prev = PREV, now = NOW } = {}) {
  const r = run(['verify', cur.toString('hex'), prev ? prev.toString('hex') : '-', ISSUER, String(now), token]);
  assert.equal(r.status, 0, `jwt_tool verify failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const b64u = (x) => Buffer.from(x).toString('base64url');
const kidOf = (secret) => crypto.createHash('sha256').update(secret).digest('hex').slice(0, 16);

/* header and payload are objects (JSON.stringify'd) or raw JSON strings. */
function nodeSign(secret, header, payload, hash = 'sha256') {
  const enc = (v) => b64u(typeof v === 'string' ? v : JSON.stringify(v));
  const input = `${enc(header)}.${enc(payload)}`;
  const sig = hash ? crypto.createHmac(hash, secret).update(input).digest('base64url') : '';
  return `${input}.${sig}`;
}

const hdr = (secret = CUR, extra = {}) => ({ alg: 'HS256', typ: 'JWT', kid: kidOf(secret), ...extra });

function claims(over = {}) {
  return { iss: ISSUER, sub: '42', name: 'alice', jti: 'jti-1', iat: NOW - 10, exp: NOW + 3600, ...over };
}

/* A random string of at most maxBytes UTF-8 bytes, mixing ASCII, escapes
 * JSON must write (quote, backslash, control), and multi-byte characters. */
function randomText(maxBytes) {
  const pool = ['a', 'Z', '7', '-', '_', ' ', '"', '\\', '/', '\n', '\u0001', 'é', 'ж', '€', '🌩', '𝄞'];
  let s = '';
  const want = crypto.randomInt(1, maxBytes + 1);
  for (;;) {
    const c = pool[crypto.randomInt(pool.length)];
    if (Buffer.byteLength(s + c) > want) break;
    s += c;
  }
  return s || 'x';
}

function splitChecked(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, token);
  for (const p of parts) {
    assert.match(p, /^[A-Za-z0-9_-]+$/, `not unpadded base64url: ${p}`);
    assert.equal(Buffer.from(p, 'base64url').toString('base64url'), p, `not canonical: ${p}`);
  }
  return parts;
}

test('C signs, Node verifies the HMAC and reads the exact claims', () => {
  const binarySecret = crypto.randomBytes(48);
  const cases = [
    [CUR, { sub: '42', name: 'alice', jti: 'jti-1', iat: NOW, exp: NOW + 900 }],
    [CUR, { sub: '7', name: 'bob', jti: 'j', iat: NOW, nbf: NOW + 30, exp: NOW + 60 }],
    [binarySecret, { sub: '123456789', name: 'Zoë "the" \\ 🌩', jti: 'AbC-_9', iat: 1, exp: 2 ** 40 }],
    [Buffer.alloc(512, 0xa5), { sub: '1', name: '', jti: 'x', iat: NOW, exp: NOW + 1 }],
  ];
  for (let i = 0; i < 20; i++) {
    cases.push([
      crypto.randomBytes(crypto.randomInt(32, 513)),
      { sub: randomText(63), name: randomText(63), jti: randomText(47), iat: NOW - i,
        nbf: i % 2 ? NOW + i : 0, exp: NOW + 1000 * i + 1 },
    ]);
  }
  for (const [secret, c] of cases) {
    const token = cSign(secret, c);
    const [h, p, s] = splitChecked(token);
    const want = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest();
    assert.ok(crypto.timingSafeEqual(Buffer.from(s, 'base64url'), want), `bad HMAC on ${token}`);
    assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString('utf8')), {
      alg: 'HS256', typ: 'JWT', kid: kidOf(secret),
    });
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    const expected = { iss: ISSUER, sub: c.sub, name: c.name, jti: c.jti, iat: c.iat };
    if (c.nbf) expected.nbf = c.nbf;
    expected.exp = c.exp;
    assert.deepEqual(payload, expected);
    assert.deepEqual(Object.keys(payload), Object.keys(expected), 'claim order');
  }
});

test('Node signs, C verifies and returns exactly the claims', () => {
  const cases = [
    [CUR, hdr(CUR), claims()],
    [PREV, hdr(PREV), claims({ sub: '9', jti: 'rotated' })], // previous key still verifies
    [CUR, { kid: kidOf(CUR), alg: 'HS256' }, claims({ nbf: NOW - 1 })], // no typ, other order
    [CUR, hdr(CUR), claims({ name: undefined })], // name is optional
    [CUR, hdr(CUR), claims({ admin: true, aud: 'ignored' })], // unknown claims ignored
  ];
  for (let i = 0; i < 20; i++) {
    cases.push([
      i % 2 ? PREV : CUR,
      hdr(i % 2 ? PREV : CUR),
      claims({ sub: randomText(63), name: randomText(63), jti: randomText(47),
        nbf: i % 3 ? NOW - i : undefined, exp: NOW + 60 + i }),
    ]);
  }
  for (const [secret, header, payload] of cases) {
    const token = nodeSign(secret, header, payload);
    const v = cVerify(token);
    assert.deepEqual(v, {
      ok: true,
      claims: {
        sub: payload.sub, name: payload.name ?? '', jti: payload.jti,
        iat: payload.iat, nbf: payload.nbf ?? 0, exp: payload.exp,
      },
    }, token);
  }
  // Without the previous key configured, its tokens name an unknown kid.
  assert.equal(cVerify(nodeSign(PREV, hdr(PREV), claims()), { prev: null }).error, 'JWT_EKID');
});

test('C rejects hostile Node-made tokens with the expected error', () => {
  const good = nodeSign(CUR, hdr(CUR), claims());
  assert.equal(cVerify(good).ok, true);
  const [gh, gp, gs] = good.split('.');
  const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const longPad = 'p'.repeat(1600);

  const variants = [
    ['alg none, empty signature', nodeSign(CUR, hdr(CUR, { alg: 'none' }), claims(), null), 'JWT_EALG'],
    ['alg none, valid HS256 signature', nodeSign(CUR, hdr(CUR, { alg: 'none' }), claims()), 'JWT_EALG'],
    ['alg HS512 signed with HMAC-SHA512', nodeSign(CUR, hdr(CUR, { alg: 'HS512' }), claims(), 'sha512'), 'JWT_EALG'],
    ['alg hs256 (lower case)', nodeSign(CUR, hdr(CUR, { alg: 'hs256' }), claims()), 'JWT_EALG'],
    ['alg RS256', nodeSign(CUR, hdr(CUR, { alg: 'RS256' }), claims()), 'JWT_EALG'],
    ['alg missing', nodeSign(CUR, { typ: 'JWT', kid: kidOf(CUR) }, claims()), 'JWT_EALG'],
    ['typ not JWT', nodeSign(CUR, hdr(CUR, { typ: 'at+jwt' }), claims()), 'JWT_EALG'],
    ['crit header', nodeSign(CUR, hdr(CUR, { crit: ['b64'], b64: false }), claims()), 'JWT_EALG'],
    ['unknown kid', nodeSign(OTHER, hdr(OTHER), claims()), 'JWT_EKID'],
    ['kid missing', nodeSign(CUR, { alg: 'HS256', typ: 'JWT' }, claims()), 'JWT_EKID'],
    ['our kid, wrong secret', nodeSign(OTHER, hdr(CUR), claims()), 'JWT_ESIGNATURE'],
    ['tampered payload, old signature', `${gh}.${b64u(JSON.stringify(claims({ sub: '1' })))}.${gs}`, 'JWT_ESIGNATURE'],
    ['one payload char flipped', `${gh}.${flip(gp, 10)}.${gs}`, 'JWT_ESIGNATURE'],
    ['one signature char flipped', `${gh}.${gp}.${flip(gs, 10)}`, 'JWT_ESIGNATURE'],
    ['wrong issuer', nodeSign(CUR, hdr(CUR), claims({ iss: 'evil' })), 'JWT_EISSUER'],
    ['no issuer', nodeSign(CUR, hdr(CUR), claims({ iss: undefined })), 'JWT_EISSUER'],
    ['expired', nodeSign(CUR, hdr(CUR), claims({ iat: NOW - 7200, exp: NOW - 60 })), 'JWT_EEXPIRED'],
    ['exp missing', nodeSign(CUR, hdr(CUR), claims({ exp: undefined })), 'JWT_EEXPIRED'],
    ['nbf in the future', nodeSign(CUR, hdr(CUR), claims({ nbf: NOW + 600 })), 'JWT_ENOTYET'],
    ['iat in the future', nodeSign(CUR, hdr(CUR), claims({ iat: NOW + 600 })), 'JWT_ENOTYET'],
    ['sub missing', nodeSign(CUR, hdr(CUR), claims({ sub: undefined })), 'JWT_ECLAIMS'],
    ['jti missing', nodeSign(CUR, hdr(CUR), claims({ jti: undefined })), 'JWT_ECLAIMS'],
    ['iat missing', nodeSign(CUR, hdr(CUR), claims({ iat: undefined })), 'JWT_ECLAIMS'],
    ['exp as a string', nodeSign(CUR, hdr(CUR), claims({ exp: String(NOW + 60) })), 'JWT_EMALFORMED'],
    ['exp as a real', nodeSign(CUR, hdr(CUR), claims({ exp: NOW + 60.5 })), 'JWT_EMALFORMED'],
    ['sub as a number', nodeSign(CUR, hdr(CUR), claims({ sub: 42 })), 'JWT_EMALFORMED'],
    ['sub too long', nodeSign(CUR, hdr(CUR), claims({ sub: '1'.repeat(64) })), 'JWT_EMALFORMED'],
    ['duplicate claim', nodeSign(CUR, hdr(CUR), JSON.stringify(claims()).replace('{', '{"sub":"0",')), 'JWT_EMALFORMED'],
    ['duplicate header key', nodeSign(CUR, `{"alg":"none","alg":"HS256","kid":"${kidOf(CUR)}"}`, claims()), 'JWT_EMALFORMED'],
    ['padded base64 (Node base64, not base64url)', good.split('.').map((p) => Buffer.from(p, 'base64url').toString('base64')).join('.'), 'JWT_EMALFORMED'],
    ['four parts', `${good}.${gs}`, 'JWT_EMALFORMED'],
    ['two parts', `${gh}.${gp}`, 'JWT_EMALFORMED'],
    ['empty payload', `${gh}..${gs}`, 'JWT_EMALFORMED'],
    ['over JWT_MAX_TOKEN, validly signed', nodeSign(CUR, hdr(CUR), claims({ pad: longPad })), 'JWT_EMALFORMED'],
  ];
  for (const [what, token, want] of variants) {
    const v = cVerify(token);
    assert.equal(v.ok, false, `${what} was accepted: ${token}`);
    assert.equal(v.error, want, `${what}: got ${v.error}`);
  }
  // The padded and oversize variants must really be what they claim to be.
  assert.ok(variants.find((x) => x[0].startsWith('padded'))[1].includes('='));
  assert.ok(variants.find((x) => x[0].startsWith('over'))[1].length > 2048);
  // The expiry boundary agrees with the documented rule: exp <= now - leeway (5 s).
  const edge = nodeSign(CUR, hdr(CUR), claims({ exp: NOW }));
  assert.equal(cVerify(edge, { now: NOW + 4 }).ok, true);
  assert.equal(cVerify(edge, { now: NOW + 5 }).error, 'JWT_EEXPIRED');
});
