// Benchmark (not a test), issue 7: media upload and download through the
// gateway on each storage backend — local disk and S3 (an s3rver started
// here, scripts/s3rver.js) — with a generated 100 MiB MP4-signature file.
// Prints MB/s both ways and the server's memory during the upload, sampled
// from /proc/PID/status every 10 ms: peak VmRSS minus VmRSS just before the
// upload, and VmHWM before/after (target: growth < 16 MiB). The payload is
// random bytes after the ftyp box; its SHA-256 is checked both ways.
//
//   usage: node bench/media.js [--mib 100] [--only local,s3]
//   STORM_BIN (default build/release/storm, else build/storm)
'use strict';
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
if (!process.env.STORM_BIN) {
  const rel = path.join(ROOT, 'build/release/storm');
  process.env.STORM_BIN = fs.existsSync(rel) ? rel : path.join(ROOT, 'build/storm');
}
const { startServer, freePort, sleep } = require('../test/blackbox/helpers');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const MIB = Number(opt('mib', '100'));
const SIZE = MIB * 1024 * 1024;
const ONLY = opt('only', 'local,s3').split(',');
const BOUNDARY = '----stormMediaBench';
const CHUNK = 1024 * 1024;

/* The file: an ISO BMFF ftyp box (video/mp4 by content) then random
 * bytes, generated piece by piece (never held whole). */
function ftyp() {
  const brands = Buffer.from('isomiso2avc1mp41', 'latin1');
  const b = Buffer.alloc(16 + brands.length);
  b.writeUInt32BE(b.length);
  b.write('ftypisom', 4, 'latin1');
  b.writeUInt32BE(0x200, 12);
  brands.copy(b, 16);
  return b;
}
function piece(len) {
  return crypto.randomFillSync(Buffer.allocUnsafe(len)); /* incompressible; fast enough not to be the bottleneck */
}

function vm(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s) || [])[1] || 0);
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
}

function upload(port, token) {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.mp4"\r\nContent-Type: video/mp4\r\n\r\n`
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const hash = crypto.createHash('sha256');
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1', port, method: 'POST', path: '/media/upload', agent: false,
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`,
          'Content-Length': String(head.length + SIZE + tail.length),
        },
      },
      (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve({ status: res.statusCode, body: b, sha256: hash.digest('hex') }));
      }
    );
    req.on('error', reject);
    (async () => {
      const w = (buf) => new Promise((r) => (req.write(buf) ? r() : req.once('drain', r)));
      await w(head);
      const f = ftyp();
      for (let off = 0; off < SIZE; off += CHUNK) {
        const p = piece(Math.min(CHUNK, SIZE - off));
        if (off === 0) f.copy(p);
        hash.update(p);
        await w(p);
      }
      req.end(tail);
    })().catch(reject);
  });
}

function download(port, token, url) {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    let n = 0;
    http.get({ host: '127.0.0.1', port, path: url, agent: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.on('data', (d) => {
        n += d.length;
        hash.update(d);
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes: n, sha256: hash.digest('hex') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function startS3() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-bench-s3-'));
  const port = await freePort();
  const secret = crypto.randomBytes(20).toString('hex');
  const p = spawn('node', [path.join(ROOT, 'scripts/s3rver.js'), '--port', String(port), '--directory', dir], {
    env: { ...process.env, S3RVER_ACCESS_KEY: 'bench-access', S3RVER_SECRET_KEY: secret },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => /listening/.test(String(d)) && resolve());
    p.on('exit', (c) => reject(new Error(`s3rver exited ${c}`)));
  });
  return {
    env: {
      STORM_MEDIA_BACKEND: 's3', MINIO_ENDPOINT: `http://127.0.0.1:${port}`, MINIO_ACCESS_KEY: 'bench-access',
      MINIO_SECRET_KEY: secret, MINIO_BUCKET: 'storm-bench',
    },
    stop: () => {
      p.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function run(kind) {
  const s3 = kind === 's3' ? await startS3() : null;
  const srv = await startServer(['--media-max-video', `${Math.max(MIB, 1)}m`], { env: s3 ? s3.env : { STORM_MEDIA_BACKEND: 'local' } });
  try {
    if (s3) {
      for (let i = 0; i < 200; i++) {
        const ok = await new Promise((r) => http.get(srv.url('/readyz'), (res) => { res.resume(); r(res.statusCode === 200); }).on('error', () => r(false)));
        if (ok) break;
        await sleep(50);
      }
    }
    const pid = srv.proc.pid;
    const before = vm(pid);
    let peak = before.rss;
    const timer = setInterval(() => {
      try {
        peak = Math.max(peak, vm(pid).rss);
      } catch {}
    }, 10);
    const t0 = process.hrtime.bigint();
    const up = await upload(srv.port, srv.token);
    const t1 = process.hrtime.bigint();
    clearInterval(timer);
    const after = vm(pid);
    if (up.status !== 201) throw new Error(`upload: ${up.status} ${up.body}`);
    const meta = JSON.parse(up.body);
    if (meta.sha256 !== up.sha256) throw new Error('sha256 mismatch on upload');
    const t2 = process.hrtime.bigint();
    const down = await download(srv.port, srv.token, meta.url);
    const t3 = process.hrtime.bigint();
    if (down.status !== 200 || down.bytes !== SIZE || down.sha256 !== up.sha256) throw new Error(`download: ${JSON.stringify(down)}`);
    const mbs = (ns) => (SIZE / 1e6 / (Number(ns) / 1e9)).toFixed(0);
    return {
      backend: kind,
      upMBs: mbs(t1 - t0),
      downMBs: mbs(t3 - t2),
      rssBefore: (before.rss / 1048576).toFixed(1),
      rssGrowth: ((peak - before.rss) / 1048576).toFixed(1),
      hwm: `${(before.hwm / 1048576).toFixed(1)} → ${(after.hwm / 1048576).toFixed(1)}`,
    };
  } finally {
    await srv.stop().catch((e) => console.error(String(e).slice(0, 500)));
    if (s3) s3.stop();
  }
}

(async () => {
  console.log(`media bench: ${MIB} MiB video/mp4 through the gateway, ${process.env.STORM_BIN}`);
  const rows = [];
  for (const k of ONLY) rows.push(await run(k));
  console.log('| backend | upload MB/s | download MB/s | RSS before upload (MiB) | peak RSS growth during upload (MiB) | VmHWM before → after (MiB) |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.upMBs} | ${r.downMBs} | ${r.rssBefore} | ${r.rssGrowth} | ${r.hwm} |`);
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
