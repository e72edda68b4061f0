'use strict';
/*
 * auth_ratelimit.test.js — the per-client-IP token bucket on POST /auth/*
 * (--auth-rate tokens per second refill a bucket of --auth-burst), and which
 * address is "the client": the TCP peer, or the X-Forwarded-For hop a
 * trusted proxy (--trusted-proxies) vouches for.
 *
 * Every request comes from 127.0.0.1, so each test owns its server and its
 * buckets. With --auth-rate 2 a token comes back every 500 ms; the bursts
 * below are sent back to back (a few ms each, cheap argon2, no hashing at
 * all for the login shapes used) so no refill lands inside one.
 */
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, killStragglers, postJson, httpGet, errorBody, show, sleep } = require('./helpers');

const ARGS = ['--argon2-ops', '1', '--argon2-mem', '64k', '--auth-rate', '2', '--auth-burst', '5'];
const LOGIN = { username: 'nobody-here', password: 'some-password' };

after(() => killStragglers());

function errCode(r) {
  return errorBody({ text: r.text, raw: r.text }).error.code;
}

const login = (port, headers) => postJson(port, '/auth/login', LOGIN, headers);

/* A login that got past the limiter: the users service's answer. */
function assertPassed(r, what) {
  assert.equal(r.status, 401, `${what}: expected to pass the limiter (401 invalid_credentials), got ${r.status} ${show(r.text)}`);
  assert.equal(errCode(r), 'invalid_credentials', `${what}: ${show(r.text)}`);
}

/* A 429 with a usable Retry-After; returns its seconds. */
function assertLimited(r, what) {
  assert.equal(r.status, 429, `${what}: expected 429, got ${r.status} ${show(r.text)}`);
  assert.equal(errCode(r), 'rate_limited', `${what}: ${show(r.text)}`);
  const ra = r.headers['retry-after'];
  assert.match(String(ra), /^[1-9]\d*$/, `${what}: Retry-After ${JSON.stringify(ra)} is not an integer >= 1`);
  return Number(ra);
}

/* Sends burst logins back to back; all must pass. Returns the elapsed ms. */
async function spendBurst(port, headers, what) {
  const t0 = Date.now();
  for (let i = 1; i <= 5; i++) assertPassed(await login(port, headers), `${what}: request ${i} of the burst`);
  return Date.now() - t0;
}

test('burst of 5 passes, the 6th is 429 with Retry-After; after waiting it passes; X-Forwarded-For is ignored from an untrusted peer', async () => {
  const srv = await startServer(ARGS, { token: false });
  try {
    const port = srv.port;
    const ms = await spendBurst(port, {}, '127.0.0.1');
    const sixth = await login(port);
    assertLimited(sixth, `6th request (${ms} ms after the first)`);
    assert.match(sixth.headers['content-type'] || '', /^application\/json\b/);

    /* one bucket for every /auth POST, whatever the body */
    assertLimited(await postJson(port, '/auth/register', { username: 'someone', password: 'some-password' }), '/auth/register while limited');
    assertLimited(await postJson(port, '/auth/refresh', { refresh_token: 'x' }), '/auth/refresh while limited');
    /* the limit is on /auth only */
    assert.equal((await httpGet(port, '/healthz')).status, 200);

    /* without --trusted-proxies the header is the client's word: no escape */
    for (const xff of ['203.0.113.7', '198.51.100.1, 203.0.113.9', '127.0.0.2', '::1'])
      assertLimited(await login(port, { 'X-Forwarded-For': xff }), `X-Forwarded-For: ${xff} from an untrusted peer`);
    assertLimited(await login(port, { 'X-Real-IP': '203.0.113.8', Forwarded: 'for=203.0.113.8' }), 'X-Real-IP / Forwarded');

    const ra = assertLimited(await login(port), 'just before waiting');
    assert.ok(ra <= 1, `at 2 tokens/s the next one is at most 500 ms away, so Retry-After is 1 s; got ${ra}`);
    await sleep(ra * 1000);
    assertPassed(await login(port), `after waiting Retry-After (${ra} s)`);
    /* The bucket refills at the rate, not back to the burst: ~1 s at 2/s
     * gave under 3 tokens (under 4 allowing for slow requests), so of 5
     * more back-to-back requests some must be refused. */
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await login(port)).status);
    const passed = statuses.filter((x) => x === 401).length;
    assert.ok(passed <= 3 && statuses.every((x) => x === 401 || x === 429), `after the wait: ${statuses}`);
  } finally {
    await srv.stop();
  }
});

test('--trusted-proxies 127.0.0.1: each X-Forwarded-For client has its own bucket', async () => {
  const srv = await startServer([...ARGS, '--trusted-proxies', '127.0.0.1'], { token: false });
  try {
    const port = srv.port;
    const A = { 'X-Forwarded-For': '198.51.100.1' };
    const ms = await spendBurst(port, A, 'client A');
    assertLimited(await login(port, A), `client A's 6th (${ms} ms after its first)`);

    /* another client behind the same proxy is not affected */
    await spendBurst(port, { 'X-Forwarded-For': '198.51.100.2' }, 'client B');
    assertPassed(await login(port, { 'X-Forwarded-For': '2001:db8::7' }), 'client C (IPv6)');
    /* the proxy's own requests (no header) are the proxy's bucket */
    assertPassed(await login(port), 'the proxy itself, no X-Forwarded-For');

    /* the chain is read right to left: a trusted hop vouches for the one before it */
    assertLimited(await login(port, { 'X-Forwarded-For': '198.51.100.1, 127.0.0.1' }), 'A through two trusted proxies');
    /* entries left of the first untrusted hop are the client's own word: A cannot escape by prepending */
    assertLimited(await login(port, { 'X-Forwarded-For': '203.0.113.50, 198.51.100.1' }), 'A prepending a fake address');
  } finally {
    await srv.stop();
  }
});
