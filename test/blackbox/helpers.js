'use strict';
/*
 * helpers.js — shared by the black-box tests: start the real `storm` binary,
 * talk to it over raw TCP (HTTP/1.1 and hand-made WebSocket frames), read
 * its metrics.
 *
 * The binary is build/storm unless STORM_BIN names another one (the ASan
 * build: STORM_BIN=build/asan/storm node --test test/blackbox/). Every test
 * file starts its own server on a free port and stops it in an `after`
 * hook; stopping fails the file when the server died early, did not exit
 * cleanly after SIGTERM, or printed a sanitizer report. Failure messages
 * carry the raw bytes seen, because they are what the server's authors need.
 */
const { spawn } = require('node:child_process');
const { startCluster, killCluster } = require('./cluster');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const STORM_BIN = path.resolve(ROOT, process.env.STORM_BIN || 'build/storm');
const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'runtime error:', 'ERROR: LeakSanitizer'];
/*
 * `serve` refuses to start without a session-token key (32+ bytes) unless
 * --dev. The tests run the production mode with this throwaway key, passed
 * through the environment as the docs advise for secrets. A caller's
 * STORM_JWT_SECRET wins.
 */
const TEST_ENV = { STORM_JWT_SECRET: 'blackbox-tests-only-not-a-secret-0123456789' };
/*
 * STORM_TEST_TOPOLOGY=cluster: every startServer starts a whole local
 * cluster (cluster.js) instead of one process. Tests that need one process
 * (restart on the same data directory, signals, one process's stderr) are
 * skipped there with `skip: CLUSTER && 'reason'`.
 */
const CLUSTER = process.env.STORM_TEST_TOPOLOGY === 'cluster';

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/* A printable, bounded rendering of raw bytes for assertion messages. */
function show(buf, max = 600) {
  const s = Buffer.isBuffer(buf) ? buf.toString('latin1') : String(buf);
  const j = JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);
  return `${j} (${Buffer.isBuffer(buf) ? buf.length : s.length} bytes)`;
}

function sanitizerReport(stderr) {
  return SANITIZER_MARKERS.some((m) => stderr.includes(m));
}

/* The useful part of a crash log: the sanitizer's headline and first frames, or the tail. */
function crashExcerpt(stderr, lines = 30) {
  const all = stderr.split('\n');
  const i = all.findIndex((l) => SANITIZER_MARKERS.some((m) => l.includes(m)));
  if (i >= 0) return all.slice(i, i + lines).join('\n');
  return stderr.length > 1500 ? '…' + stderr.slice(-1500) : stderr;
}

/*
 * Runs `storm <args>` to completion (usage errors, operator commands).
 * env replaces the whole environment (default: the test key + ours);
 * input is written to stdin.
 */
function runStorm(args, { timeoutMs = 10000, env, input } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(STORM_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env || { ...TEST_ENV, ...process.env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.stdin.on('error', () => {});
    p.stdin.end(input || '');
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`storm ${args.join(' ')} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
}

/*
 * /ws needs an access token. The operator commands make one without going
 * through the HTTP API (whose own tests are elsewhere): `storm user create`
 * then `storm token`, on the server's data directory and key.
 */
const WS_USER = 'bbuser';
async function mintToken(dataDir, env, db) {
  const e = env ? { ...TEST_ENV, ...process.env, ...env } : undefined;
  const where = db ? ['--db', db] : ['--data', dataDir];
  const c = await runStorm(['user', 'create', WS_USER, ...where], { env: e, input: 'blackbox-password-123\n' });
  if (c.code !== 0 || sanitizerReport(c.stderr)) throw new Error(`storm user create failed: ${JSON.stringify(c)}`);
  const t = await runStorm(['token', '--user', WS_USER, ...where], { env: e });
  const token = t.stdout.trim();
  if (t.code !== 0 || sanitizerReport(t.stderr) || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) {
    throw new Error(`storm token failed: ${JSON.stringify(t)}`);
  }
  return token;
}

class StormServer {
  constructor(proc, dataDir) {
    this.proc = proc;
    this.dataDir = dataDir;
    this.stderr = '';
    this.port = 0;
    this.exit = null; /* {code, signal} once exited */
    this.stopping = false;
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    proc.stderr.on('data', (d) => (this.stderr += d.toString('utf8')));
  }

  /* JSON log lines parsed so far (lines that are not JSON are skipped). */
  logs() {
    const out = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  tail(n = 3000) {
    return this.stderr.length > n ? '…' + this.stderr.slice(-n) : this.stderr;
  }

  url(p = '/') {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  /* The /ws URL, with this server's access token unless withToken is false. */
  wsUrl(p = '/ws', withToken = true) {
    const q = withToken && this.token ? `${p.includes('?') ? '&' : '?'}access_token=${this.token}` : '';
    return `ws://127.0.0.1:${this.port}${p}${q}`;
  }

  async waitListening(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const l of this.logs()) {
        const m = /^listening on [^ ]*:(\d+)$/.exec(l.msg || '');
        if (m) {
          this.port = Number(m[1]);
          return this.port;
        }
      }
      if (this.exit) break;
      await sleep(20);
    }
    throw new Error(
      `storm did not log "listening on" within ${timeoutMs} ms` +
        (this.exit ? ` (exited ${JSON.stringify(this.exit)})` : '') +
        `; stderr:\n${this.tail()}`
    );
  }

  /* Sends sig, waits up to waitMs, then SIGKILL. Returns {code, signal, killed, ms, stderr}. */
  async terminate(sig = 'SIGTERM', waitMs = 5000) {
    if (this.exit) return { ...this.exit, killed: false, ms: 0, early: !this.stopping, stderr: this.stderr };
    this.stopping = true;
    const t0 = Date.now();
    this.proc.kill(sig);
    let timer;
    const deadline = new Promise((resolve) => { timer = setTimeout(() => resolve(null), waitMs); });
    let r = await Promise.race([this.exited, deadline]);
    clearTimeout(timer); /* a pending timer would keep the test process alive */
    let killed = false;
    if (!r) {
      this.proc.kill('SIGKILL');
      r = await this.exited;
      killed = true;
    }
    this.terminated = { ...r, killed, ms: Date.now() - t0, stderr: this.stderr };
    return this.terminated;
  }

  /*
   * The end-of-file check: the server must still be running, exit 0 within
   * 5 s of SIGTERM and print no sanitizer report. When a test already
   * terminated it, only the sanitizer check remains (the test judged the exit).
   */
  async stop() {
    if (this.stopped) return this.stopped;
    const diedEarly = this.exit && !this.stopping ? { ...this.exit } : null;
    const already = this.terminated;
    const r = already || (await this.terminate('SIGTERM', 5000));
    this.stopped = r;
    if (!this.keepData) fs.rmSync(this.dataDir, { recursive: true, force: true });
    const problems = [];
    if (diedEarly) problems.push(`server exited before the end of the tests: ${JSON.stringify(diedEarly)}`);
    if (sanitizerReport(this.stderr)) problems.push('sanitizer report in stderr');
    if (!already && !diedEarly) {
      if (r.killed) problems.push('did not exit within 5 s of SIGTERM (SIGKILLed)');
      else if (r.code !== 0 || r.signal) problems.push(`exit after SIGTERM: code=${r.code} signal=${r.signal}`);
    }
    if (problems.length) throw new Error(`${problems.join('; ')}\nstderr:\n${this.tail(8000)}`);
    return r;
  }
}

/*
 * Starts `storm serve --port 0 --data <tmp> ...args` and waits for its port.
 * --shutdown-timeout 3s is added unless args name one, so stop() stays fast.
 * token (default true): a user is created first and srv.token holds an
 * access token for it.
 */
const live = new Set();

/*
 * SIGKILLs servers a failed test left running (they would keep the test
 * file's process alive forever). Returns how many there were.
 */
function killStragglers() {
  let n = 0;
  for (const s of live) {
    if (!s.exit) {
      s.stopping = true;
      if (s.cluster) killCluster(s);
      else s.proc.kill('SIGKILL');
      n++;
    }
  }
  return n;
}

/*
 * dataDir: serve an existing data directory (a restart on the same data);
 * the caller owns it, so stop() leaves it in place.
 */
async function startServer(args = [], { env, token = true, dataDir: givenDir } = {}) {
  if (!fs.existsSync(STORM_BIN)) throw new Error(`no binary at ${STORM_BIN} (run make, or set STORM_BIN)`);
  if (CLUSTER) {
    if (givenDir) throw new Error('cluster topology: restarting one process on its data directory is a single-process test');
    const c = await startCluster(STORM_BIN, args, { ...TEST_ENV, ...(env || {}) });
    live.add(c);
    if (token) c.token = await mintToken(null, env, c.db);
    return c;
  }
  const dataDir = givenDir || fs.mkdtempSync(path.join(os.tmpdir(), 'storm-bb-'));
  const tok = token ? await mintToken(dataDir, env) : null;
  const full = ['serve', '--port', '0', '--data', dataDir];
  if (!args.includes('--shutdown-timeout')) full.push('--shutdown-timeout', '3s');
  full.push(...args);
  const proc = spawn(STORM_BIN, full, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...TEST_ENV, ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1', ...(env || {}) },
  });
  const s = new StormServer(proc, dataDir);
  s.keepData = Boolean(givenDir);
  s.token = tok;
  live.add(s);
  proc.on('exit', () => live.delete(s));
  await s.waitListening(5000);
  return s;
}

/*
 * True when the server still answers GET /healthz within timeoutMs on a
 * fresh connection. A crash often lands just after the response that
 * triggered it, so this is checked after every test.
 */
async function probeAlive(srv, timeoutMs = 1500) {
  if (srv.exit) return false;
  let s;
  try {
    s = await RawSocket.connect(srv.port);
    await s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await s.readResponse({ timeoutMs });
    return r.status === 200;
  } catch {
    return false;
  } finally {
    if (s) s.destroy();
  }
}

/*
 * One server per test file. The file registers the hooks itself (so
 * failures are reported against the file, not this helper):
 *   const fx = serverFixture([...flags]);
 *   before(fx.start); afterEach(fx.check); after(fx.finish);
 * check(): after each test the server must still answer; when it does not,
 * that test fails with the server's stderr (the crash is attributed to the
 * test that caused it) and a fresh server is started so the remaining tests
 * still say something. finish(): stops the server (see StormServer.stop)
 * and fails if anything crashed. Use fx.srv / fx.port: they change after a
 * restart.
 */
function serverFixture(args = [], opts = {}) {
  const fx = {
    srv: null,
    crashes: [],
    get port() {
      return this.srv.port;
    },
    start: async () => {
      fx.srv = await startServer(args, opts);
    },
    check: async (t) => {
      if (!fx.srv || fx.srv.stopping) return;
      if (await probeAlive(fx.srv)) return;
      const dead = fx.srv;
      const r = await dead.terminate('SIGKILL', 3000).catch(() => ({}));
      const what = `server stopped answering during this test (exit ${JSON.stringify({ code: r.code, signal: r.signal })})`;
      /* The test may have failed already (then this hook's error is not shown): keep the evidence for finish(). */
      fx.crashes.push(`test "${t && t.name}": ${what}:\n${crashExcerpt(dead.stderr)}`);
      fs.rmSync(dead.dataDir, { recursive: true, force: true });
      fx.srv = await startServer(args, opts);
      throw new Error(`${what}; a fresh server runs the next tests. stderr:\n${dead.tail(6000)}`);
    },
    finish: async () => {
      if (fx.srv) await fx.srv.stop();
      killStragglers();
      if (fx.crashes.length) throw new Error(`server crashed ${fx.crashes.length} time(s) in this file:\n${fx.crashes.join('\n---\n')}`);
    },
  };
  return fx;
}

/* Resolves a port that was free a moment ago (for fixed-port tests). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

/* ---------------------------------------------------------------- raw TCP */

/*
 * A TCP client that keeps every byte received in `buf` and lets a test wait
 * for a condition on it. Parsed messages are consumed from the front.
 */
class RawSocket {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.all = Buffer.alloc(0); /* everything ever received, for messages */
    this.closed = false;
    this.closedAt = 0;
    this.error = null;
    this.waiters = new Set();
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (this.all.length < 1 << 20) this.all = Buffer.concat([this.all, d]);
      this.poke();
    });
    sock.on('error', (e) => {
      this.error = e;
    });
    sock.on('close', () => {
      this.closed = true;
      this.closedAt = Date.now();
      this.poke();
    });
  }

  static connect(port, { host = '127.0.0.1' } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host });
      sock.setNoDelay(true);
      const onErr = (e) => reject(e);
      sock.once('error', onErr);
      sock.once('connect', () => {
        sock.off('error', onErr);
        resolve(new RawSocket(sock));
      });
    });
  }

  poke() {
    for (const w of [...this.waiters]) w();
  }

  write(data) {
    return new Promise((resolve, reject) => {
      this.sock.write(data, (e) => (e ? reject(e) : resolve()));
    });
  }

  /*
   * Resolves with fn()'s first truthy result, re-evaluated on every event;
   * rejects after timeoutMs with `what` and the raw bytes received.
   */
  until(fn, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        let v;
        try {
          v = fn();
        } catch (e) {
          finish();
          reject(e);
          return;
        }
        if (v) {
          finish();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        if (done) return;
        finish();
        reject(
          new Error(
            `timeout after ${timeoutMs} ms waiting for ${what}; closed=${this.closed}; ` +
              `unconsumed ${show(this.buf)}; all received ${show(this.all)}`
          )
        );
      }, timeoutMs);
      const finish = () => {
        done = true;
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /* Waits for the peer to close; resolves true, or false after timeoutMs. */
  async waitClosed(timeoutMs) {
    try {
      await this.until(() => this.closed, timeoutMs, 'close');
      return true;
    } catch {
      return false;
    }
  }

  /* Reads one HTTP response (head:true = response to HEAD, never a body). */
  async readResponse({ head = false, timeoutMs = 3000 } = {}) {
    return this.until(
      () => {
        const r = parseResponse(this.buf, { head, eofBody: this.closed });
        if (r === null) {
          if (this.closed) throw new Error(`connection closed before a full response; got ${show(this.buf)}`);
          return null;
        }
        this.buf = this.buf.subarray(r.size);
        return r;
      },
      timeoutMs,
      'an HTTP response'
    );
  }

  /* Reads one WebSocket frame (as sent by a server: must be unmasked). */
  async readFrame(timeoutMs = 3000) {
    return this.until(
      () => {
        const f = parseFrame(this.buf);
        if (f === null) {
          if (this.closed) throw new Error(`connection closed before a full frame; got ${show(this.buf)}`);
          return null;
        }
        this.buf = this.buf.subarray(f.size);
        return f;
      },
      timeoutMs,
      'a WebSocket frame'
    );
  }

  /* Reads frames until a close frame (skipping pings, pongs and data). */
  async readUntilClose(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    const seen = [];
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no close frame within ${timeoutMs} ms; frames: ${JSON.stringify(seen.map(frameSummary))}`);
      const f = await this.readFrame(left);
      seen.push(f);
      if (f.opcode === 0x8) return { close: f, before: seen.slice(0, -1) };
    }
  }

  destroy() {
    this.sock.destroy();
  }
}

/* --------------------------------------------------------- HTTP parsing */

/*
 * Parses one response at the front of buf: {status, reason, version,
 * headers (lower-case name -> array of values), body, size, rawHead}, or
 * null when incomplete. 1xx and HEAD responses have no body; a response
 * without Content-Length or chunked encoding runs to EOF (eofBody).
 */
function parseResponse(buf, { head = false, eofBody = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const rawHead = buf.subarray(0, end).toString('latin1');
  const lines = rawHead.split('\r\n');
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`malformed status line in ${show(buf)}`);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) throw new Error(`malformed header line ${JSON.stringify(l)} in ${show(buf)}`);
    const k = l.slice(0, i).trim().toLowerCase();
    (headers[k] = headers[k] || []).push(l.slice(i + 1).trim());
  }
  const status = Number(m[2]);
  let pos = end + 4;
  let body = Buffer.alloc(0);
  const te = (headers['transfer-encoding'] || []).join(',').toLowerCase();
  if (head || (status >= 100 && status < 200) || status === 204 || status === 304) {
    /* no body */
  } else if (te.includes('chunked')) {
    const parts = [];
    for (;;) {
      const le = buf.indexOf('\r\n', pos);
      if (le < 0) return null;
      const n = parseInt(buf.subarray(pos, le).toString('latin1'), 16);
      if (Number.isNaN(n)) throw new Error(`bad chunk size in ${show(buf)}`);
      if (n === 0) {
        /* last chunk, optional trailer fields, empty line */
        if (buf.length < le + 4) return null;
        if (buf[le + 2] === 0x0d && buf[le + 3] === 0x0a) {
          pos = le + 4;
        } else {
          const tend = buf.indexOf('\r\n\r\n', le + 2);
          if (tend < 0) return null;
          pos = tend + 4;
        }
        break;
      }
      if (buf.length < le + 2 + n + 2) return null;
      parts.push(buf.subarray(le + 2, le + 2 + n));
      pos = le + 2 + n + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length']) {
    const n = Number(headers['content-length'][0]);
    if (buf.length < pos + n) return null;
    body = buf.subarray(pos, pos + n);
    pos += n;
  } else {
    if (!eofBody) return null;
    body = buf.subarray(pos);
    pos = buf.length;
  }
  return {
    version: m[1],
    status,
    reason: m[3] || '',
    headers,
    header: (k) => (headers[k.toLowerCase()] || [])[0],
    body,
    text: body.toString('utf8'),
    size: pos,
    raw: buf.subarray(0, pos),
  };
}

/* Asserts the JSON error body shape; returns the parsed object. */
function errorBody(res) {
  let j;
  try {
    j = JSON.parse(res.text);
  } catch (e) {
    throw new Error(`error body is not JSON: ${show(res.raw)}`);
  }
  if (
    !j ||
    typeof j !== 'object' ||
    !j.error ||
    typeof j.error.code !== 'string' ||
    typeof j.error.message !== 'string' ||
    j.error.code === '' ||
    j.error.message === ''
  ) {
    throw new Error(`error body is not {"error":{"code":"...","message":"..."}}: ${show(res.raw)}`);
  }
  return j;
}

/*
 * One-shot exchange on a fresh socket: write `data`, read one response,
 * then wait up to closeMs for the server to close (closed: whether it did).
 * The socket is always destroyed afterwards. Returns {res, closed}.
 */
async function exchange(port, data, { closeMs = 0, head = false, timeoutMs = 3000 } = {}) {
  const s = await RawSocket.connect(port);
  try {
    await s.write(data);
    const res = await s.readResponse({ head, timeoutMs });
    const closed = closeMs > 0 ? await s.waitClosed(closeMs) : s.closed;
    return { res, closed };
  } finally {
    s.destroy();
  }
}

/*
 * A well-behaved client right after a bad one: GET /healthz must be 200.
 * Plain keep-alive request, closed by us (the server-side close paths have
 * their own tests).
 */
async function assertStillServing(port) {
  const s = await RawSocket.connect(port);
  try {
    await s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await s.readResponse();
    if (res.status !== 200 || res.text !== '{"status":"ok"}') {
      throw new Error(`second client not served normally: ${show(res.raw)}`);
    }
  } finally {
    s.destroy();
  }
}

/* ---------------------------------------------------------- WebSocket raw */

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function wsAccept(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

function handshakeRequest({ key = WS_KEY, version = '13', extra = '', omitKey = false, path: p = '/ws', token, httpVersion = '1.1' } = {}) {
  const q = token ? `?access_token=${token}` : '';
  return (
    `GET ${p}${q} HTTP/${httpVersion}\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    (omitKey ? '' : `Sec-WebSocket-Key: ${key}\r\n`) +
    `Sec-WebSocket-Version: ${version}\r\n${extra}\r\n`
  );
}

/*
 * Opens a raw WebSocket to srv (a StormServer: its port and token): checks
 * the 101 and the accept key, reads the hello frame. Returns {sock, hello}.
 */
async function wsConnectRaw(srv, { readHello = true } = {}) {
  const sock = await RawSocket.connect(srv.port);
  await sock.write(handshakeRequest({ token: srv.token }));
  const res = await sock.readResponse();
  if (res.status !== 101) throw new Error(`handshake not answered with 101: ${show(res.raw)}`);
  if (res.header('sec-websocket-accept') !== wsAccept(WS_KEY)) throw new Error(`bad Sec-WebSocket-Accept in ${show(res.raw)}`);
  let hello = null;
  if (readHello) {
    const f = await sock.readFrame();
    if (f.opcode !== 0x1) throw new Error(`first frame is not text: ${JSON.stringify(frameSummary(f))}`);
    hello = JSON.parse(f.payload.toString('utf8'));
  }
  return { sock, hello };
}

/*
 * Encodes a frame. Client frames are masked unless mask:false. rsv is the
 * 3 RSV bits (0..7). len overrides the announced length (for lies).
 */
function buildFrame({ fin = true, rsv = 0, opcode = 0x1, payload = Buffer.alloc(0), mask = true, maskKey } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  let hdr;
  if (p.length < 126) {
    hdr = Buffer.from([b0, (mask ? 0x80 : 0) | p.length]);
  } else if (p.length < 65536) {
    hdr = Buffer.alloc(4);
    hdr[0] = b0;
    hdr[1] = (mask ? 0x80 : 0) | 126;
    hdr.writeUInt16BE(p.length, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[0] = b0;
    hdr[1] = (mask ? 0x80 : 0) | 127;
    hdr.writeBigUInt64BE(BigInt(p.length), 2);
  }
  if (!mask) return Buffer.concat([hdr, p]);
  const k = maskKey || crypto.randomBytes(4);
  const body = Buffer.alloc(p.length);
  for (let i = 0; i < p.length; i++) body[i] = p[i] ^ k[i & 3];
  return Buffer.concat([hdr, k, body]);
}

function closePayload(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code, 0);
  return Buffer.concat([b, Buffer.from(reason, 'utf8')]);
}

/*
 * Parses one server frame at the front of buf: {fin, rsv, opcode, masked,
 * payload, size, code?, reason?} or null when incomplete. A masked server
 * frame is an error (RFC 6455 5.1).
 */
function parseFrame(buf) {
  if (buf.length < 2) return null;
  const fin = (buf[0] & 0x80) !== 0;
  const rsv = (buf[0] >> 4) & 7;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let pos = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    pos = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    pos = 10;
  }
  if (masked) throw new Error(`server sent a masked frame: ${show(buf.subarray(0, 32))}`);
  if (buf.length < pos + len) return null;
  const f = { fin, rsv, opcode, masked, payload: buf.subarray(pos, pos + len), size: pos + len, raw: buf.subarray(0, pos + len) };
  if (opcode === 0x8) {
    f.code = len >= 2 ? f.payload.readUInt16BE(0) : null;
    f.reason = len > 2 ? f.payload.subarray(2).toString('utf8') : '';
  }
  return f;
}

function frameSummary(f) {
  const s = { fin: f.fin, rsv: f.rsv, opcode: f.opcode, len: f.payload.length };
  if (f.opcode === 0x8) {
    s.code = f.code;
    s.reason = f.reason;
  } else if (f.opcode === 0x1) s.text = f.payload.toString('utf8').slice(0, 200);
  else s.hex = f.payload.subarray(0, 32).toString('hex');
  s.raw = f.raw.subarray(0, 64).toString('hex');
  return s;
}

/* ------------------------------------------------------- WebSocket (ws) */

/*
 * Wraps a `ws` client: queues text messages (parsed as JSON when they
 * parse), records pings, pongs and the close, and lets a test await them.
 */
class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.pings = [];
    this.pongs = [];
    this.binary = [];
    this.waiters = new Set();
    this.closeInfo = null;
    this.openedAt = Date.now();
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        this.poke();
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.binary.push(data);
      else {
        const t = data.toString('utf8');
        let v;
        try {
          v = JSON.parse(t);
        } catch {
          v = { __raw: t };
        }
        this.queue.push(v);
      }
      this.poke();
    });
    ws.on('ping', (d) => {
      this.pings.push({ data: d, at: Date.now() });
      this.poke();
    });
    ws.on('pong', (d) => {
      this.pongs.push({ data: d, at: Date.now() });
      this.poke();
    });
    ws.on('error', (e) => {
      this.error = e;
      this.poke();
    });
  }

  static open(url, opts = {}) {
    return new Promise((resolve, reject) => {
      const WebSocket = require('ws');
      const ws = new WebSocket(url, opts);
      const c = new WsClient(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    });
  }

  poke() {
    for (const w of [...this.waiters]) w();
  }

  until(fn, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        const v = fn();
        if (v) {
          finish();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(
            `timeout after ${timeoutMs} ms waiting for ${what}; queued=${JSON.stringify(this.queue).slice(0, 500)} ` +
              `close=${JSON.stringify(this.closeInfo)} error=${this.error && this.error.message}`
          )
        );
      }, timeoutMs);
      const finish = () => {
        done = true;
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /* Next text message (JSON-parsed). */
  async next(timeoutMs = 3000) {
    await this.until(() => this.queue.length > 0 || this.closeInfo, timeoutMs, 'a message');
    if (this.queue.length === 0) throw new Error(`closed before a message: ${JSON.stringify(this.closeInfo)}`);
    return this.queue.shift();
  }

  send(v, opts) {
    this.ws.send(typeof v === 'string' || Buffer.isBuffer(v) ? v : JSON.stringify(v), opts);
  }

  /* Sends a request and waits for the reply with the same ref (others stay queued). */
  async request(obj, timeoutMs = 3000) {
    this.send(obj);
    let idx = -1;
    await this.until(
      () => {
        idx = this.queue.findIndex((m) => m && JSON.stringify(m.ref) === JSON.stringify(obj.ref));
        return idx >= 0 || this.closeInfo;
      },
      timeoutMs,
      `a reply with ref ${JSON.stringify(obj.ref)}`
    );
    if (idx < 0) throw new Error(`closed before the reply: ${JSON.stringify(this.closeInfo)}`);
    return this.queue.splice(idx, 1)[0];
  }

  async waitClose(timeoutMs) {
    return Promise.race([
      this.closed,
      sleep(timeoutMs).then(() => {
        throw new Error(`not closed within ${timeoutMs} ms`);
      }),
    ]);
  }

  terminate() {
    this.ws.terminate();
  }
}

/* ---------------------------------------------------------------- metrics */

/*
 * A simple request with node:http on a fresh keep-alive connection that is
 * dropped afterwards (its own Agent), so no pooled socket races the
 * server's idle timeout and no `Connection: close` is sent (that path has
 * its own raw test). Resolves {status, headers (lower-case), text}.
 */
function httpGet(port, p, { method = 'GET', headers = {} } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, agent }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${p}: no response within 5 s`)));
    req.on('error', reject);
    req.end();
  }).finally(() => agent.destroy());
}

/*
 * Like httpGet, with a request body (string or Buffer; Content-Length is
 * set, no Content-Type unless headers name one). Its own connection, so
 * concurrent calls are concurrent connections. Resolves {status, headers,
 * text}.
 */
function httpRequest(port, p, { method = 'POST', headers = {}, body } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const data = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  const h = data ? { 'Content-Length': String(data.length), ...headers } : headers;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: h, agent }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no response within 10 s`)));
    req.on('error', reject);
    req.end(data || undefined);
  }).finally(() => agent.destroy());
}

/* POST of a JSON value (or a raw string) as application/json. */
function postJson(port, p, value, headers = {}) {
  const body = typeof value === 'string' ? value : JSON.stringify(value);
  return httpRequest(port, p, { body, headers: { 'Content-Type': 'application/json', ...headers } });
}

/* Fetches /metrics; returns {text, value(name, labels?)} (value: number or undefined). */
async function metrics(port) {
  const r = await httpGet(port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.text}`);
  const text = r.text;
  const value = (name, labels = '') => {
    const want = labels ? `${name}{${labels}}` : name;
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      if (sp < 0) continue;
      if (line.slice(0, sp) === want) return Number(line.slice(sp + 1));
    }
    return undefined;
  };
  return { text, value };
}

/* Polls until cond(metrics) holds, or fails with the last values. */
async function waitMetric(port, cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let m;
  while (Date.now() < deadline) {
    m = await metrics(port);
    if (cond(m)) return m;
    await sleep(100);
  }
  throw new Error(`metrics never satisfied "${what}" within ${timeoutMs} ms; last:\n${m && m.text}`);
}

/* -------------------------------------------------------------- messaging */

/*
 * An authenticated HTTP call with a JSON body (value, sent as
 * application/json; undefined = no body). token may be null (no
 * Authorization header). Resolves {status, json (null when the body is
 * not JSON), text}.
 */
async function apiCall(port, method, p, token, value) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (value !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = typeof value === 'string' ? value : JSON.stringify(value);
  }
  const r = await httpRequest(port, p, { method, headers, body });
  let json = null;
  try {
    json = JSON.parse(r.text);
  } catch {
    /* not JSON: the caller asserts on text */
  }
  return { status: r.status, json, text: r.text, headers: r.headers };
}

/*
 * Registers `username` over HTTP (password derived from it) and logs in.
 * Resolves {id, username, password, token, refresh}. Throws with the raw
 * answer when either step fails.
 */
async function newUser(port, username) {
  const password = `pw-${username}-blackbox`;
  const reg = await postJson(port, '/auth/register', { username, password });
  if (reg.status !== 201) throw new Error(`register ${username}: ${reg.status} ${show(reg.text)}`);
  const log = await postJson(port, '/auth/login', { username, password });
  if (log.status !== 200) throw new Error(`login ${username}: ${log.status} ${show(log.text)}`);
  const j = JSON.parse(log.text);
  return { id: j.user.id, username: j.user.username, password, token: j.access_token, refresh: j.refresh_token };
}

/* Opens /ws with an access token; query is extra query text ('resume=1'). Resolves a WsClient. */
function wsOpen(port, token, query = '') {
  return WsClient.open(`ws://127.0.0.1:${port}/ws?access_token=${token}${query ? `&${query}` : ''}`);
}

/*
 * Like WsClient.request, safe when several requests of one client are in
 * flight: the reply is taken off the queue inside the check that finds it
 * (request() splices after an await, when another reply may have shifted
 * the queue). Resolves the reply; rejects when the client closes first.
 */
async function wsRequest(c, obj, timeoutMs = 3000) {
  const want = JSON.stringify(obj.ref);
  c.send(obj);
  const r = await c.until(
    () => {
      const i = c.queue.findIndex((m) => m && m.ref !== undefined && JSON.stringify(m.ref) === want);
      if (i >= 0) return { reply: c.queue.splice(i, 1)[0] };
      return c.closeInfo ? { closed: c.closeInfo } : null;
    },
    timeoutMs,
    `a reply with ref ${want}`
  );
  if (!r.reply) throw new Error(`closed before the reply to ${JSON.stringify(obj).slice(0, 200)}: ${JSON.stringify(r.closed)}`);
  return r.reply;
}

/*
 * Opens /ws over raw TCP and writes the upgrade request and the given
 * client messages (objects are JSON-encoded) in ONE write, so the server
 * reads them before it can have sent hello. tokenAndQuery is appended to
 * `?access_token=` (e.g. `${token}&resume=1`). Collects the JSON text
 * frames until done(frames) is true, the socket closes or timeoutMs
 * passes. Resolves {frames, sock} (the caller destroys sock).
 */
async function wsUpgradeWithFrames(port, tokenAndQuery, msgs, done, timeoutMs = 3000) {
  const sock = await RawSocket.connect(port);
  const frames = msgs.map((m) => buildFrame({ payload: typeof m === 'string' ? m : JSON.stringify(m) }));
  await sock.write(Buffer.concat([Buffer.from(handshakeRequest({ token: tokenAndQuery })), ...frames]));
  const res = await sock.readResponse();
  if (res.status !== 101) {
    sock.destroy();
    throw new Error(`handshake not answered with 101: ${show(res.raw)}`);
  }
  const out = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(out) && Date.now() < deadline) {
    let f;
    try {
      f = await sock.readFrame(deadline - Date.now());
    } catch {
      break; /* timeout or close: the caller judges what arrived */
    }
    if (f.opcode === 0x1) out.push(JSON.parse(f.payload.toString('utf8')));
  }
  return { frames: out, sock };
}

module.exports = {
  ROOT,
  CLUSTER,
  STORM_BIN,
  sleep,
  show,
  sanitizerReport,
  crashExcerpt,
  TEST_ENV,
  runStorm,
  mintToken,
  killStragglers,
  startServer,
  serverFixture,
  probeAlive,
  freePort,
  RawSocket,
  parseResponse,
  errorBody,
  exchange,
  assertStillServing,
  WS_KEY,
  wsAccept,
  handshakeRequest,
  wsConnectRaw,
  buildFrame,
  closePayload,
  parseFrame,
  frameSummary,
  WsClient,
  httpGet,
  httpRequest,
  postJson,
  metrics,
  waitMetric,
  apiCall,
  newUser,
  wsOpen,
  wsRequest,
  wsUpgradeWithFrames,
};
