'use strict';
/*
 * services.test.js — `storm serve --services LIST` runs a subset of the
 * services in one process. Every process serves /healthz, /readyz and
 * /metrics (probes and scraping for services-only replicas); only a process
 * running the gateway serves the API and WebSocket; a gateway without the
 * services behind it answers 503 (nobody to route to), never hangs.
 */
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, killStragglers, httpGet, postJson, show } = require('./helpers');

after(() => killStragglers());

test('--services users,messages: operational endpoints only, no API', async () => {
  const srv = await startServer(['--services', 'users,messages']);
  assert.equal((await httpGet(srv.port, '/healthz')).status, 200);
  const ready = await httpGet(srv.port, '/readyz');
  assert.equal(ready.status, 200, show(ready.text));
  const m = await httpGet(srv.port, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /^# (HELP|TYPE) /m);
  const login = await postJson(srv.port, '/auth/login', { username: 'someone', password: 'password1' });
  assert.equal(login.status, 404, show(login.text));
  assert.equal((await httpGet(srv.port, '/ws')).status, 404);
  await srv.stop();
});

test('--services gateway alone: API calls get 503 service_unavailable at once', async () => {
  const srv = await startServer(['--services', 'gateway']);
  const t0 = Date.now();
  const r = await postJson(srv.port, '/auth/login', { username: 'someone', password: 'password1' });
  assert.equal(r.status, 503, show(r.text));
  assert.equal(JSON.parse(r.text).error.code, 'service_unavailable');
  assert.ok(Date.now() - t0 < 2000, 'the gateway waited for a service that does not exist');
  assert.equal((await httpGet(srv.port, '/healthz')).status, 200);
  await srv.stop();
});

test('--services with an unknown name is refused at start', async () => {
  await assert.rejects(startServer(['--services', 'gateway,nosuch']), /exit|exited|status|2/);
});
