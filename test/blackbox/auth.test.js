'use strict';
/*
 * auth.test.js — accounts and tokens through the real binary (issue "Users
 * service and authentication"): the HTTP flow register → login → me →
 * refresh → logout, refresh-token rotation and reuse detection, access
 * tokens minted here with Node's crypto (an independent HS256
 * implementation) against /auth/me and the /ws upgrade, the operator
 * commands `storm token` and `storm user create`, input validation, a
 * registration race, login answers that must not tell unknown users from
 * wrong passwords, and the start-up rules for the signing secret.
 *
 * The per-IP rate limit has its own file (auth_ratelimit.test.js): every
 * test here comes from 127.0.0.1, so the servers here set it out of reach.
 * Password hashing uses cheap argon2 parameters except where the cost is
 * the point (the timing test).
 */
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { CLUSTER,
  serverFixture,
  startServer,
  runStorm,
  sanitizerReport,
  RawSocket,
  exchange,
  errorBody,
  handshakeRequest,
  wsConnectRaw,
  WsClient,
  httpGet,
  httpRequest,
  postJson,
  show,
  TEST_ENV,
} = require('./helpers');

const FAST = ['--argon2-ops', '1', '--argon2-mem', '64k'];
const NO_LIMIT = ['--auth-rate', '1000', '--auth-burst', '1000'];
/* The key the fixture's server signs with (helpers: a caller's STORM_JWT_SECRET wins). */
const SECRET = process.env.STORM_JWT_SECRET || TEST_ENV.STORM_JWT_SECRET;

const fx = serverFixture([...FAST, ...NO_LIMIT], { token: false });
before(fx.start);
afterEach(fx.check);
after(fx.finish);

/* ------------------------------------------------------------ helpers */

const b64u = (x) => Buffer.from(x).toString('base64url');
const kidOf = (secret) => crypto.createHash('sha256').update(secret).digest('hex').slice(0, 16);
const nowS = () => Math.floor(Date.now() / 1000);

/* A JWT made by Node alone: header and payload objects, HMAC with `hash` (null: no signature). */
function nodeSign(secret, header, payload, hash = 'sha256') {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  const sig = hash ? crypto.createHmac(hash, secret).update(input).digest('base64url') : '';
  return `${input}.${sig}`;
}

function jwtPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

function parseJson(res) {
  try {
    return JSON.parse(res.text);
  } catch {
    throw new Error(`body is not JSON: ${res.status} ${show(res.text)}`);
  }
}

/* Asserts status and error code; returns the parsed body. */
function assertError(res, status, code, what = '') {
  const ctx = `${what} → ${res.status} ${show(res.text)}`;
  assert.equal(res.status, status, ctx);
  const j = errorBody({ text: res.text, raw: res.text });
  assert.equal(j.error.code, code, ctx);
  return j;
}

let seq = 0;
/* A fresh username per call (every test shares the fixture's database). */
const uname = (p = 'u') => `${p}${process.pid % 1000}x${++seq}`;

async function register(port, body, what = 'register') {
  const r = await postJson(port, '/auth/register', body);
  assert.equal(r.status, 201, `${what}: ${r.status} ${show(r.text)}`);
  return parseJson(r).user;
}

async function login(port, username, password) {
  const r = await postJson(port, '/auth/login', { username, password });
  assert.equal(r.status, 200, `login ${username}: ${r.status} ${show(r.text)}`);
  return parseJson(r);
}

const me = (port, token) => httpGet(port, '/auth/me', { headers: { Authorization: `Bearer ${token}` } });

/* A new user and a session for it. */
async function newSession(port, prefix) {
  const username = uname(prefix);
  const password = `pw-${username}-secret`;
  const user = await register(port, { username, password });
  const s = await login(port, username, password);
  return { username, password, user, ...s };
}

function assertPublicUser(u, want, what) {
  assert.deepEqual(Object.keys(u).sort(), ['created_at', 'display_name', 'id', 'username'], `${what}: ${JSON.stringify(u)}`);
  assert.ok(Number.isInteger(u.id) && u.id > 0, `${what}: id ${JSON.stringify(u)}`);
  assert.ok(Number.isInteger(u.created_at), `${what}: created_at ${JSON.stringify(u)}`);
  for (const [k, v] of Object.entries(want)) assert.equal(u[k], v, `${what}: ${k} in ${JSON.stringify(u)}`);
}

/* The 401 a bad access token gets, on HTTP. */
function assertInvalidToken(res, what) {
  assertError(res, 401, 'invalid_token', what);
  assert.match(res.headers['www-authenticate'] || '', /^Bearer\b.*error="invalid_token"/, `${what}: WWW-Authenticate ${JSON.stringify(res.headers)}`);
}

/* The /ws upgrade with ?access_token=token (raw): returns the parsed response; the socket is closed. */
async function wsUpgrade(port, token) {
  const s = await RawSocket.connect(port);
  try {
    await s.write(handshakeRequest({ token }));
    return await s.readResponse();
  } finally {
    s.destroy();
  }
}

async function assertWsRejected(port, token, what) {
  const r = await wsUpgrade(port, token);
  assert.equal(r.status, 401, `${what}: /ws upgrade answered ${show(r.raw)}`);
  assert.equal(errorBody(r).error.code, 'invalid_token', `${what}: ${show(r.raw)}`);
}

async function assertWsAccepted(port, token, user, what) {
  const { sock, hello } = await wsConnectRaw({ port, token });
  try {
    assert.equal(hello.op, 'hello', `${what}: ${JSON.stringify(hello)}`);
    assert.deepEqual(hello.user, { id: user.id, username: user.username }, `${what}: ${JSON.stringify(hello)}`);
  } finally {
    sock.destroy();
  }
}

/* --------------------------------------------------------- the HTTP flow */

test('register → login → me → refresh → logout → refresh refused', async () => {
  const port = fx.port;
  const lower = uname('flow');
  const username = lower.toUpperCase(); /* stored lower-case */
  assert.notEqual(username, lower);
  const password = 'correct horse battery';

  const reg = await postJson(port, '/auth/register', { username, password });
  assert.equal(reg.status, 201, show(reg.text));
  assert.match(reg.headers['content-type'] || '', /^application\/json\b/);
  const rj = parseJson(reg);
  assert.deepEqual(Object.keys(rj), ['user'], reg.text);
  assertPublicUser(rj.user, { username: lower, display_name: lower }, 'register');
  const t0 = Date.now();
  assert.ok(Math.abs(rj.user.created_at - t0) < 60000, `created_at ${rj.user.created_at} is not unix ms near ${t0}`);

  const lr = await postJson(port, '/auth/login', { username: lower, password });
  assert.equal(lr.status, 200, show(lr.text));
  const s1 = parseJson(lr);
  assert.deepEqual(Object.keys(s1).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type', 'user'], lr.text);
  assert.equal(s1.token_type, 'Bearer');
  assert.equal(s1.expires_in, 900);
  assert.match(s1.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.match(s1.refresh_token, /^[\w-]{43}$/);
  assert.deepEqual(s1.user, rj.user);
  const claims = jwtPayload(s1.access_token);
  assert.equal(claims.sub, String(rj.user.id), JSON.stringify(claims));
  assert.equal(claims.name, lower, JSON.stringify(claims));
  assert.equal(claims.iss, 'storm', JSON.stringify(claims));
  assert.equal(claims.exp - claims.iat, 900, JSON.stringify(claims));

  const m = await me(port, s1.access_token);
  assert.equal(m.status, 200, show(m.text));
  assert.deepEqual(parseJson(m), { user: rj.user });

  const rf = await postJson(port, '/auth/refresh', { refresh_token: s1.refresh_token });
  assert.equal(rf.status, 200, show(rf.text));
  const s2 = parseJson(rf);
  assert.equal(s2.token_type, 'Bearer');
  assert.equal(s2.expires_in, 900);
  assert.deepEqual(s2.user, rj.user);
  assert.notEqual(s2.access_token, s1.access_token);
  assert.notEqual(s2.refresh_token, s1.refresh_token);
  assert.match(s2.refresh_token, /^[\w-]{43}$/);
  assert.equal((await me(port, s2.access_token)).status, 200);

  const lo = await postJson(port, '/auth/logout', { refresh_token: s2.refresh_token });
  assert.equal(lo.status, 204, show(lo.text));
  assert.equal(lo.text, '', 'a 204 has no body');
  /* idempotent: an unknown (already revoked) token is still a logout */
  const lo2 = await postJson(port, '/auth/logout', { refresh_token: s2.refresh_token });
  assert.equal(lo2.status, 204, show(lo2.text));

  assertError(await postJson(port, '/auth/refresh', { refresh_token: s2.refresh_token }), 401, 'invalid_refresh_token', 'refresh after logout');
  /* login with the wrong password and with an unknown name */
  assertError(await postJson(port, '/auth/login', { username: lower, password: 'wrong password' }), 401, 'invalid_credentials', 'wrong password');
  /* the login name is folded like the registration */
  const again = await login(port, username, password);
  assert.equal(again.user.id, rj.user.id);
});

test('GET /users/{username}: public profile; 404 unknown; 401 without a token', async () => {
  const port = fx.port;
  const viewer = await newSession(port, 'viewer');
  const target = uname('target');
  const reg = await register(port, { username: target, password: 'target-password', display_name: 'Tärget Ünicode' });
  const auth = { Authorization: `Bearer ${viewer.access_token}` };

  const r = await httpGet(port, `/users/${target}`, { headers: auth });
  assert.equal(r.status, 200, show(r.text));
  const j = parseJson(r);
  assert.deepEqual(Object.keys(j), ['user'], r.text);
  assertPublicUser(j.user, { id: reg.id, username: target, display_name: 'Tärget Ünicode' }, 'profile');
  assert.ok(!/password|hash|argon/i.test(r.text), `profile leaks a password field: ${r.text}`);

  const upper = await httpGet(port, `/users/${target.toUpperCase()}`, { headers: auth });
  assert.equal(upper.status, 200, `the name lookup folds case like registration: ${show(upper.text)}`);
  assert.equal(parseJson(upper).user.id, reg.id);

  assertError(await httpGet(port, '/users/nobody-here-zz', { headers: auth }), 404, 'user_not_found', 'unknown user');

  const anon = await httpGet(port, `/users/${target}`);
  assertError(anon, 401, 'unauthorized', 'no token');
  assert.match(anon.headers['www-authenticate'] || '', /^Bearer\b/, JSON.stringify(anon.headers));
  const anonMe = await httpGet(port, '/auth/me');
  assertError(anonMe, 401, 'unauthorized', '/auth/me without a token');
  assert.match(anonMe.headers['www-authenticate'] || '', /^Bearer\b/, JSON.stringify(anonMe.headers));
  /* a scheme other than Bearer carries no token */
  const basic = await httpGet(port, '/auth/me', { headers: { Authorization: `Basic ${b64u('a:b')}` } });
  assert.equal(basic.status, 401, show(basic.text));
});

test('refresh token reuse revokes the whole family', async () => {
  const port = fx.port;
  const s = await newSession(port, 'reuse');
  const A = s.refresh_token;
  const r1 = await postJson(port, '/auth/refresh', { refresh_token: A });
  assert.equal(r1.status, 200, show(r1.text));
  const B = parseJson(r1).refresh_token;
  assert.notEqual(A, B);

  assertError(await postJson(port, '/auth/refresh', { refresh_token: A }), 401, 'refresh_token_reused', 'A again');
  assertError(await postJson(port, '/auth/refresh', { refresh_token: B }), 401, 'invalid_refresh_token', 'B after the family was revoked');

  /* another login of the same user is another family: untouched */
  const other = await login(port, s.username, s.password);
  const r2 = await postJson(port, '/auth/refresh', { refresh_token: other.refresh_token });
  assert.equal(r2.status, 200, `an unrelated session must survive: ${show(r2.text)}`);

  /* never-issued and malformed tokens */
  assertError(await postJson(port, '/auth/refresh', { refresh_token: b64u(crypto.randomBytes(32)) }), 401, 'invalid_refresh_token', 'unknown token');
  assertError(await postJson(port, '/auth/refresh', { refresh_token: 'short' }), 401, 'invalid_refresh_token', 'malformed token');
  assertError(await postJson(port, '/auth/refresh', {}), 400, 'bad_request', 'no refresh_token');
});

/* --------------------------------------------------------- access tokens */

/*
 * Every bad variant is built from the same claims and header as the good
 * one, changing one thing, so the good token's 200 shows the variants fail
 * for that one thing.
 */
function tokenVariants(user) {
  const iat = nowS() - 10;
  const claims = { iss: 'storm', sub: String(user.id), name: user.username, jti: b64u(crypto.randomBytes(16)), iat, exp: iat + 300 };
  const header = { alg: 'HS256', typ: 'JWT', kid: kidOf(SECRET) };
  const good = nodeSign(SECRET, header, claims);
  const [h, p, sig] = good.split('.');
  const flip = (c) => (c === 'A' ? 'B' : 'A');
  const { exp: _omit, ...noExp } = claims;
  const otherSecret = 'an-entirely-different-secret-0123456789abcdef';
  const bad = {
    expired: nodeSign(SECRET, header, { ...claims, iat: nowS() - 600, exp: nowS() - 60 }),
    'tampered signature': `${h}.${p}.${flip(sig[0])}${sig.slice(1)}`,
    'tampered payload (sub changed, old signature)': `${h}.${b64u(JSON.stringify({ ...claims, sub: String(user.id + 1) }))}.${sig}`,
    'alg none, no signature': nodeSign(SECRET, { ...header, alg: 'none' }, claims, null),
    'alg HS512, validly signed': nodeSign(SECRET, { ...header, alg: 'HS512' }, claims, 'sha512'),
    /* A valid HMAC-SHA256 over its own header and payload: only the alg
     * pin (or the typ / crit rules) can reject these. */
    'alg none, valid HMAC-SHA256': nodeSign(SECRET, { ...header, alg: 'none' }, claims),
    'alg HS512, HMAC-SHA256': nodeSign(SECRET, { ...header, alg: 'HS512' }, claims),
    'alg hs256 (case)': nodeSign(SECRET, { ...header, alg: 'hs256' }, claims),
    'no alg': nodeSign(SECRET, { typ: 'JWT', kid: header.kid }, claims),
    'typ JWS': nodeSign(SECRET, { ...header, typ: 'JWS' }, claims),
    'crit header': nodeSign(SECRET, { ...header, crit: ['exp'] }, claims),
    'wrong iss': nodeSign(SECRET, header, { ...claims, iss: 'not-storm' }),
    'missing exp': nodeSign(SECRET, header, noExp),
    'other secret, our kid': nodeSign(otherSecret, header, claims),
    'our secret, unknown kid': nodeSign(SECRET, { ...header, kid: kidOf(otherSecret) }, claims),
    'no kid': nodeSign(SECRET, { alg: 'HS256', typ: 'JWT' }, claims),
    'two parts': `${h}.${p}`,
    garbage: 'not-a-token',
  };
  return { good, bad };
}

test('access tokens made by Node: a correct one is accepted, each defect → 401 invalid_token', async () => {
  const port = fx.port;
  const s = await newSession(port, 'jwt');
  const { good, bad } = tokenVariants(s.user);

  const ok = await me(port, good);
  assert.equal(ok.status, 200, `a Node-signed HS256 token must be accepted: ${show(ok.text)}`);
  assert.deepEqual(parseJson(ok).user, s.user);

  for (const [what, tok] of Object.entries(bad)) {
    assertInvalidToken(await me(port, tok), what);
    assertInvalidToken(await httpGet(port, `/users/${s.username}`, { headers: { Authorization: `Bearer ${tok}` } }), `${what} on /users/{name}`);
  }
  /* the server's own token carries the header shape Node expects */
  const [h] = s.access_token.split('.');
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString('utf8')), { alg: 'HS256', typ: 'JWT', kid: kidOf(SECRET) });
  const mac = crypto.createHmac('sha256', SECRET).update(s.access_token.split('.').slice(0, 2).join('.')).digest('base64url');
  assert.equal(s.access_token.split('.')[2], mac, 'the server signs with HMAC-SHA256 of the configured secret');
});

test('WebSocket upgrade: the same token checks (401 on each defect, 101 + hello on a good one)', async () => {
  const port = fx.port;
  const s = await newSession(port, 'wsjwt');
  const { good, bad } = tokenVariants(s.user);

  await assertWsAccepted(port, good, s.user, 'Node-signed token');
  await assertWsAccepted(port, s.access_token, s.user, 'token from /auth/login');
  for (const [what, tok] of Object.entries(bad)) await assertWsRejected(port, tok, what);

  const none = await wsUpgrade(port, undefined);
  assert.equal(none.status, 401, `no token: ${show(none.raw)}`);
  assert.equal(errorBody(none).error.code, 'unauthorized', show(none.raw));

  /* a client that can set headers may use Authorization: Bearer instead */
  const c = await WsClient.open(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${good}` } });
  try {
    const hello = await c.next();
    assert.equal(hello.op, 'hello', JSON.stringify(hello));
    assert.deepEqual(hello.user, { id: s.user.id, username: s.user.username });
  } finally {
    c.terminate();
  }
  await assert.rejects(
    WsClient.open(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${bad.expired}` } }),
    /handshake answered 401/,
  );
});

/* ------------------------------------------------------ operator commands */

test('storm token / storm user create against the running server\'s data directory', { skip: CLUSTER && 'one process and its SQLite data directory' }, async () => {
  const srv = fx.srv;
  const port = fx.port;
  const dataArgs = ['--data', srv.dataDir];
  const s = await newSession(port, 'tok');

  /* The server is running: SQLite's WAL lets the command read beside it. */
  const t = await runStorm(['token', '--user', s.username, '--ttl', '60', ...dataArgs]);
  assert.equal(t.code, 0, `storm token: ${JSON.stringify(t)}`);
  assert.ok(!sanitizerReport(t.stderr), t.stderr);
  const tok = t.stdout.trim();
  assert.match(tok, /^[\w-]+\.[\w-]+\.[\w-]+$/, JSON.stringify(t));
  const c = jwtPayload(tok);
  assert.equal(c.exp - c.iat, 60, JSON.stringify(c));
  assert.equal(c.sub, String(s.user.id), JSON.stringify(c));
  const m = await me(port, tok);
  assert.equal(m.status, 200, show(m.text));
  assert.deepEqual(parseJson(m).user, s.user);

  /* the name is folded as everywhere else */
  const tu = await runStorm(['token', '--user', s.username.toUpperCase(), ...dataArgs]);
  assert.equal(tu.code, 0, JSON.stringify(tu));
  assert.equal(jwtPayload(tu.stdout.trim()).sub, String(s.user.id));

  const nobody = await runStorm(['token', '--user', 'nobody-at-all', ...dataArgs]);
  assert.notEqual(nobody.code, 0, `storm token for an unknown user must fail: ${JSON.stringify(nobody)}`);
  assert.equal(nobody.stdout, '', 'no token printed');
  assert.ok(!sanitizerReport(nobody.stderr), nobody.stderr);
  assert.match(nobody.stderr, /user_not_found|not found/, nobody.stderr);

  for (const ttl of ['0', '-5', 'abc']) {
    const bt = await runStorm(['token', '--user', s.username, '--ttl', ttl, ...dataArgs]);
    assert.equal(bt.code, 2, `--ttl ${ttl}: ${JSON.stringify(bt)}`);
    assert.equal(bt.stdout, '');
  }

  /* storm user create: password on stdin; the account then logs in over HTTP */
  const name = uname('Admin');
  const cr = await runStorm(['user', 'create', name, '--display-name', 'Made By Admin', ...dataArgs], { input: 'admin-made-password\n' });
  assert.equal(cr.code, 0, `storm user create: ${JSON.stringify(cr)}`);
  assert.ok(!sanitizerReport(cr.stderr), cr.stderr);
  const made = JSON.parse(cr.stdout);
  assertPublicUser(made, { username: name.toLowerCase(), display_name: 'Made By Admin' }, 'storm user create');
  const ls = await login(port, name, 'admin-made-password');
  assert.equal(ls.user.id, made.id);
  assertError(await postJson(port, '/auth/login', { username: name, password: 'admin-made-password\n' }), 401, 'invalid_credentials', 'the newline is not part of the password');

  const dup = await runStorm(['user', 'create', name, ...dataArgs], { input: 'another-password\n' });
  assert.notEqual(dup.code, 0, `duplicate user create: ${JSON.stringify(dup)}`);
  assert.match(dup.stderr, /username_taken/, dup.stderr);
  const shortPw = await runStorm(['user', 'create', uname('short'), ...dataArgs], { input: 'short\n' });
  assert.notEqual(shortPw.code, 0, `7-byte password: ${JSON.stringify(shortPw)}`);
  assert.match(shortPw.stderr, /invalid_password/, shortPw.stderr);
});

/* ------------------------------------------------------------ validation */

test('registration validation: field-specific 400 codes and their boundaries', async () => {
  const port = fx.port;
  const pw = 'valid-password';
  const reject = async (body, code, what) => assertError(await postJson(port, '/auth/register', body), 400, code, what);

  await reject({ username: 'ab', password: pw }, 'invalid_username', '2-char username');
  await reject({ username: 'a'.repeat(33), password: pw }, 'invalid_username', '33-char username');
  for (const u of ['has space', 'bang!', 'al/ice', 'alicé', 'tab\tname', 'émile', 'x@y.z'])
    await reject({ username: u, password: pw }, 'invalid_username', `username ${JSON.stringify(u)}`);
  assert.equal((await register(port, { username: 'Q3z', password: pw }, '3-char username')).username, 'q3z');
  const u32 = `${uname('l')}_`.padEnd(32, 'q');
  assert.equal(u32.length, 32);
  const r32 = await register(port, { username: u32, password: pw }, '32-char username');
  assert.equal(r32.username, u32);
  await register(port, { username: uname('Dots.And-Dash_'), password: pw }, 'a-z 0-9 _ . - allowed');

  await reject({ username: uname('p'), password: 'x'.repeat(7) }, 'invalid_password', '7-byte password');
  await reject({ username: uname('p'), password: 'x'.repeat(257) }, 'invalid_password', '257-byte password');
  await reject({ username: uname('p'), password: 'ééé' + 'x' }, 'invalid_password', '7 bytes in 4 characters');
  const u8 = uname('p');
  await register(port, { username: u8, password: 'éééé' }, '8 bytes in 4 characters');
  await login(port, u8, 'éééé');
  const u256 = uname('p');
  const long = crypto.randomBytes(128).toString('hex');
  await register(port, { username: u256, password: long }, '256-byte password');
  await login(port, u256, long);
  assertError(await postJson(port, '/auth/login', { username: u256, password: long.slice(0, 255) + (long[255] === 'a' ? 'b' : 'a') }), 401, 'invalid_credentials', 'the last byte of a 256-byte password counts');

  const e64 = 'é'.repeat(64);
  const d64 = await register(port, { username: uname('d'), password: pw, display_name: e64 }, '64 × é (128 bytes)');
  assert.equal(d64.display_name, e64);
  await reject({ username: uname('d'), password: pw, display_name: 'é'.repeat(65) }, 'invalid_display_name', '65 × é');
  await reject({ username: uname('d'), password: pw, display_name: 'a'.repeat(65) }, 'invalid_display_name', '65 × a');
  await reject({ username: uname('d'), password: pw, display_name: '' }, 'invalid_display_name', 'empty display_name');
  await reject({ username: uname('d'), password: pw, display_name: 'bell\u0007' }, 'invalid_display_name', 'control character');
  await reject({ username: uname('d'), password: pw, display_name: 'c1\u0085' }, 'invalid_display_name', 'C1 control character');
  const emoji = '🌩'.repeat(64);
  const dEmoji = await register(port, { username: uname('d'), password: pw, display_name: emoji }, '64 × 4-byte characters');
  assert.equal(dEmoji.display_name, emoji);

  await reject({ password: pw }, 'bad_request', 'no username');
  await reject({ username: uname('m') }, 'bad_request', 'no password');
  await reject({ username: 12345, password: pw }, 'bad_request', 'numeric username');
  await reject({ username: uname('m'), password: pw, display_name: 7 }, 'bad_request', 'numeric display_name');
});

test('request bodies: bad JSON 400, non-object 400, > 8 KiB 413, wrong or missing Content-Type 415', async () => {
  const port = fx.port;
  for (const route of ['/auth/register', '/auth/login', '/auth/refresh', '/auth/logout']) {
    assertError(await postJson(port, route, '{"username": "x", '), 400, 'bad_json', `${route} malformed JSON`);
    assertError(await postJson(port, route, ''), 400, 'bad_json', `${route} empty body`);
    assertError(await postJson(port, route, '{"a":1,"a":2}'), 400, 'bad_json', `${route} duplicate keys`);
    assertError(await postJson(port, route, '[{"username":"x","password":"y"}]'), 400, 'json_object_required', `${route} array`);
    /* a bare scalar is not even accepted by the JSON parser (it wants an object or array) */
    const scalar = await postJson(port, route, '"a string"');
    assert.equal(scalar.status, 400, `${route} string: ${show(scalar.text)}`);
    assert.ok(['bad_json', 'json_object_required'].includes(errorBody({ text: scalar.text, raw: scalar.text }).error.code), show(scalar.text));
    const body = JSON.stringify({ username: 'whoever', password: 'whatever-pass' });
    assertError(await httpRequest(port, route, { body, headers: { 'Content-Type': 'text/plain' } }), 415, 'unsupported_media_type', `${route} text/plain`);
    assertError(await httpRequest(port, route, { body }), 415, 'unsupported_media_type', `${route} no Content-Type`);
    assertError(await httpRequest(port, route, { body, headers: { 'Content-Type': 'application/jsonx' } }), 415, 'unsupported_media_type', `${route} application/jsonx`);
  }
  /* parameters and case are allowed on the media type */
  const ok = await httpRequest(port, '/auth/login', {
    body: JSON.stringify({ username: 'nobody-zz', password: 'whatever-pass' }),
    headers: { 'Content-Type': 'Application/JSON; charset=utf-8' },
  });
  assertError(ok, 401, 'invalid_credentials', 'application/json with charset');

  /* the limit is 8 KiB: exactly 8192 bytes pass, 8193 do not */
  const base = JSON.stringify({ username: 'nobody-zz', password: 'whatever-pass' });
  const at = (n) => base + ' '.repeat(n - base.length);
  const raw = (b) => `POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
  const { res: r8192 } = await exchange(port, raw(at(8192)));
  assert.equal(r8192.status, 401, `8192-byte body: ${show(r8192.raw)}`);
  const { res: r8193 } = await exchange(port, raw(at(8193)), { closeMs: 1000 });
  assert.equal(r8193.status, 413, `8193-byte body: ${show(r8193.raw)}`);
  assert.equal(errorBody(r8193).error.code, 'payload_too_large', show(r8193.raw));
  const big = await postJson(port, '/auth/register', { username: uname('big'), password: 'x'.repeat(20000) });
  assertError(big, 413, 'payload_too_large', '20 kB register');
});

test('50 concurrent registrations of one name: exactly one 201, 49 × 409 username_taken', async () => {
  const port = fx.port;
  const username = uname('race');
  const all = await Promise.all(
    Array.from({ length: 50 }, (_, i) => postJson(port, '/auth/register', { username, password: `race-password-${i}` })),
  );
  const by = {};
  for (const r of all) by[r.status] = (by[r.status] || 0) + 1;
  assert.deepEqual(by, { 201: 1, 409: 49 }, `statuses ${JSON.stringify(by)}; first odd one: ${show((all.find((r) => r.status !== 409 && r.status !== 201) || {}).text || '')}`);
  for (const r of all.filter((x) => x.status === 409)) assertError(r, 409, 'username_taken', 'race loser');
  /* the winner's password is the one that works */
  const i = all.findIndex((r) => r.status === 201);
  const s = await login(port, username, `race-password-${i}`);
  assert.equal(s.user.id, parseJson(all[i]).user.id);
  assertError(await postJson(port, '/auth/login', { username, password: `race-password-${(i + 1) % 50}` }), 401, 'invalid_credentials', 'a loser\'s password');
});

/* ------------------------------------------------- no user enumeration */

test('unknown user and wrong password: same status, byte-identical body', async () => {
  const port = fx.port;
  const s = await newSession(port, 'enum');
  const wrong = await postJson(port, '/auth/login', { username: s.username, password: 'not-the-password' });
  const unknown = await postJson(port, '/auth/login', { username: uname('ghost'), password: 'not-the-password' });
  const badShape = await postJson(port, '/auth/login', { username: 'x', password: 'short' });
  assert.equal(wrong.status, 401, show(wrong.text));
  assert.equal(unknown.status, 401, show(unknown.text));
  assert.equal(unknown.text, wrong.text, 'bodies must be byte-identical');
  assert.equal(unknown.headers['content-type'], wrong.headers['content-type']);
  assert.equal(unknown.headers['content-length'], wrong.headers['content-length']);
  assertError(wrong, 401, 'invalid_credentials');
  /* a name or password that could never be valid is the same answer too */
  assert.equal(badShape.status, 401, show(badShape.text));
  assert.equal(badShape.text, wrong.text);
});

test('unknown user costs a password hash too (default argon2, median of 5)', async () => {
  const srv = await startServer(NO_LIMIT, { token: false });
  try {
    const port = srv.port;
    const username = 'timing-user';
    await register(port, { username, password: 'the-real-password' });
    const timed = async (u) => {
      const t0 = process.hrtime.bigint();
      const r = await postJson(port, '/auth/login', { username: u, password: 'a-wrong-password' });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.equal(r.status, 401, show(r.text));
      return ms;
    };
    await timed(username); /* warm-up */
    await timed('timing-ghost');
    const wrong = [];
    const unknown = [];
    for (let i = 0; i < 5; i++) {
      wrong.push(await timed(username));
      unknown.push(await timed(`timing-ghost-${i}`));
    }
    const median = (a) => [...a].sort((x, y) => x - y)[2];
    const mw = median(wrong);
    const mu = median(unknown);
    const msg = `wrong-password ms ${wrong.map((x) => x.toFixed(1))} (median ${mw.toFixed(1)}), unknown-user ms ${unknown.map((x) => x.toFixed(1))} (median ${mu.toFixed(1)})`;
    assert.ok(mu >= 0.3 * mw, `an unknown user answers much faster than a wrong password: ${msg}`);
  } finally {
    await srv.stop();
  }
});

/* ---------------------------------------------------------------- secrets */

/* The environment with no STORM_* variable (the secret especially). */
function envWithoutStorm(extra = {}) {
  const e = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('STORM_')) e[k] = v;
  return { ...e, ...extra };
}

test('serve refuses to start without a secret (unless --dev) or with a 31-byte one', { skip: CLUSTER && 'start-up of one process' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-auth-sec-'));
  try {
    const base = ['serve', '--port', '0', '--data', dir, ...FAST];
    const none = await runStorm(base, { env: envWithoutStorm(), timeoutMs: 5000 });
    assert.equal(none.code, 2, `no secret: ${JSON.stringify(none)}`);
    assert.match(none.stderr, /STORM_JWT_SECRET/, none.stderr);
    assert.ok(!sanitizerReport(none.stderr), none.stderr);

    const s31 = 'x'.repeat(31);
    const short = await runStorm(base, { env: envWithoutStorm({ STORM_JWT_SECRET: s31 }), timeoutMs: 5000 });
    assert.equal(short.code, 2, `31-byte secret: ${JSON.stringify(short)}`);
    assert.match(short.stderr, /STORM_JWT_SECRET|jwt-secret/, short.stderr);
    const shortFlag = await runStorm([...base, '--jwt-secret', s31], { env: envWithoutStorm(), timeoutMs: 5000 });
    assert.equal(shortFlag.code, 2, `--jwt-secret of 31 bytes: ${JSON.stringify(shortFlag)}`);
    assert.ok(!fs.existsSync(path.join(dir, 'jwt_secret')), 'no dev secret is created without --dev');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  /* 32 bytes is enough, and tokens are signed with exactly that key */
  const s32 = 'k'.repeat(32);
  const srv = await startServer([...FAST, ...NO_LIMIT], { token: false, env: { STORM_JWT_SECRET: s32 } });
  try {
    const s = await newSession(srv.port, 'k32');
    assert.equal(JSON.parse(Buffer.from(s.access_token.split('.')[0], 'base64url')).kid, kidOf(s32));
    const iat = nowS();
    const tok = nodeSign(s32, { alg: 'HS256', typ: 'JWT', kid: kidOf(s32) }, { iss: 'storm', sub: String(s.user.id), name: s.username, jti: 'j1', iat, exp: iat + 60 });
    assert.equal((await me(srv.port, tok)).status, 200);
  } finally {
    await srv.stop();
  }
});

test('--dev without a secret: creates <data>/jwt_secret (0600) and reuses it after a restart', { skip: CLUSTER && 'restarts one process on its data directory' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-auth-dev-'));
  const args = ['--dev', ...FAST, ...NO_LIMIT];
  const env = { STORM_JWT_SECRET: '', STORM_JWT_SECRET_PREVIOUS: '' }; /* empty = unset */
  let srv;
  try {
    srv = await startServer(args, { token: false, env, dataDir: dir });
    const file = path.join(dir, 'jwt_secret');
    assert.ok(fs.existsSync(file), `--dev did not create ${file}: ${fs.readdirSync(dir)}`);
    const st = fs.statSync(file);
    assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
    const secret1 = fs.readFileSync(file, 'utf8');
    assert.match(secret1, /^[0-9a-f]{64}\n?$/, JSON.stringify(secret1));
    const key = secret1.trim();
    assert.notEqual(key, TEST_ENV.STORM_JWT_SECRET);

    const s = await newSession(srv.port, 'dev');
    assert.equal(JSON.parse(Buffer.from(s.access_token.split('.')[0], 'base64url')).kid, kidOf(key), 'the file is the key in use');
    const t = await srv.terminate('SIGTERM');
    assert.equal(t.code, 0, `exit after SIGTERM: ${JSON.stringify({ code: t.code, signal: t.signal })}`);
    await srv.stop();

    srv = await startServer(args, { token: false, env, dataDir: dir });
    assert.equal(fs.readFileSync(file, 'utf8'), secret1, 'the restart must not rewrite the secret');
    const m = await me(srv.port, s.access_token);
    assert.equal(m.status, 200, `a token minted before the restart: ${show(m.text)}`);
    assert.deepEqual(parseJson(m).user, s.user);
    /* and the refresh token from before the restart still rotates */
    const rf = await postJson(srv.port, '/auth/refresh', { refresh_token: s.refresh_token });
    assert.equal(rf.status, 200, show(rf.text));
    await srv.stop();
    srv = null;

    /* the check above can fail: another data directory means another key */
    const other = await startServer(args, { token: false, env });
    try {
      assertInvalidToken(await me(other.port, s.access_token), 'token from another --dev data directory');
    } finally {
      await other.stop();
    }
  } finally {
    if (srv) await srv.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
