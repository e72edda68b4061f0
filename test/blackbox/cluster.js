'use strict';
/*
 * cluster.js — the black-box suites' "server" when STORM_TEST_TOPOLOGY=cluster:
 * instead of one `storm serve` process, a whole local cluster
 * (scripts/cluster.sh: 3 NATS nodes, PostgreSQL, Redis, 3 gateways sharing
 * one port, 2 replicas of users and of messages), started with the test's
 * `storm serve` arguments on every STORM process. The kernel spreads
 * connections over the three gateways, so two clients of one test usually
 * sit on different gateways and must still see each other's messages,
 * presence and typing.
 *
 * It offers what the suites use of a single server: port, token, logs(),
 * tail(), stop() (every process still alive, no sanitizer report in any
 * log, clean exit), and terminate() (stops the whole cluster).
 */
const { execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'scripts/cluster.sh');

function run(cmd, args, env, timeoutMs) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

class ClusterServer {
  constructor(dir, env) {
    this.dir = dir;
    this.env = env;
    this.port = 0;
    this.exit = null;
    this.stopping = false;
    this.cluster = true;
    this.expectDead = new Set(); /* processes a test killed on purpose */
  }

  get stderr() {
    let all = '';
    for (const f of fs.existsSync(this.dir) ? fs.readdirSync(this.dir) : []) {
      if (/^(gateway|users|messages|notifications|media)\d\.log$/.test(f)) all += fs.readFileSync(path.join(this.dir, f), 'utf8');
    }
    return all;
  }

  logs() {
    const out = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try { out.push(JSON.parse(line)); } catch { /* partial line */ }
    }
    return out;
  }

  tail(n = 3000) {
    const s = this.stderr;
    return s.length > n ? '…' + s.slice(-n) : s;
  }

  url(p = '/') { return `http://127.0.0.1:${this.port}${p}`; }

  wsUrl(p = '/ws', withToken = true) {
    const q = withToken && this.token ? `${p.includes('?') ? '&' : '?'}access_token=${this.token}` : '';
    return `ws://127.0.0.1:${this.port}${p}${q}`;
  }

  /* The STORM processes of the cluster: [{name, pid, alive}]. */
  processes() {
    const procs = fs.readFileSync(path.join(this.dir, 'procs'), 'utf8').trim().split('\n').map((l) => l.split(' ')[0]);
    return procs.map((name) => {
      const pid = Number(fs.readFileSync(path.join(this.dir, `${name}.pid`), 'utf8'));
      let alive = true;
      try { process.kill(pid, 0); } catch { alive = false; }
      return { name, pid, alive };
    });
  }

  async terminate() {
    if (this.exit) return { ...this.exit, killed: false, ms: 0, stderr: this.stderr };
    this.stopping = true;
    const t0 = Date.now();
    const dead = this.processes().filter((p) => !p.alive && !this.expectDead.has(p.name)).map((p) => p.name);
    const logs = this.stderr;
    const r = await run(SCRIPT, ['down'], this.env, 60000);
    this.exit = { code: r.code === 0 && dead.length === 0 ? 0 : 1, signal: null };
    this.terminated = { ...this.exit, killed: false, ms: Date.now() - t0, stderr: logs, dead };
    return this.terminated;
  }

  async stop() {
    if (this.stopped) return this.stopped;
    const already = this.terminated;
    const r = already || (await this.terminate());
    this.stopped = r;
    const problems = [];
    if (r.dead && r.dead.length) problems.push(`cluster processes died during the tests: ${r.dead.join(', ')}`);
    if (['ERROR: AddressSanitizer', 'runtime error:', 'ERROR: LeakSanitizer'].some((m) => r.stderr.includes(m)))
      problems.push('sanitizer report in a cluster process log');
    if (problems.length) throw new Error(`${problems.join('; ')}\nlogs:\n${r.stderr.slice(-8000)}`);
    return r;
  }
}

/*
 * Starts a cluster whose STORM processes all get `args`; env adds to the
 * environment (e.g. STORM_JWT_SECRET). Resolves a ClusterServer.
 */
async function startCluster(stormBin, args, env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-cl-'));
  const full = {
    ...process.env,
    ...env,
    STORM_BIN: stormBin,
    STORM_CLUSTER_DIR: dir,
    STORM_CLUSTER_ARGS: [...args, ...(args.includes('--shutdown-timeout') ? [] : ['--shutdown-timeout', '3s'])].join(' '),
  };
  const r = await run(SCRIPT, ['up'], full, 120000);
  if (r.code !== 0) {
    await run(SCRIPT, ['down'], full, 60000);
    throw new Error(`scripts/cluster.sh up failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  const s = new ClusterServer(dir, full);
  const envText = fs.readFileSync(path.join(dir, 'env'), 'utf8');
  s.port = Number(/STORM_CLUSTER_GATEWAY_PORT=(\d+)/.exec(envText)[1]);
  s.db = /STORM_CLUSTER_DB=(\S+)/.exec(envText)[1];
  s.dataDir = path.join(dir, 'users1');
  return s;
}

/* Synchronous teardown for a test file that failed with a cluster up. */
function killCluster(s) {
  try { execFileSync(SCRIPT, ['down'], { env: s.env, stdio: 'ignore', timeout: 60000 }); } catch { /* best effort */ }
}

module.exports = { startCluster, killCluster, ClusterServer };
