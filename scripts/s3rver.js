#!/usr/bin/env node
'use strict';
/*
 * s3rver.js — an S3-compatible test server on loopback (issue 7): the npm
 * package @20minutes/s3rver (pinned in package.json) started from its API,
 * because its published package has no CLI file. It verifies AWS Signature
 * V4, so a wrong secret really gets 403 SignatureDoesNotMatch.
 *
 *   node scripts/s3rver.js --port N --directory DIR [--address 127.0.0.1]
 *        [--access-key K --secret-key S]     (or S3RVER_ACCESS_KEY / S3RVER_SECRET_KEY)
 *
 * The package's built-in key pair (S3RVER/S3RVER) is revoked and replaced
 * by the given one, so tests prove that STORM signs with the configured
 * key, not with a well-known default. Prints "s3rver listening on
 * http://ADDR:PORT" once it accepts requests; SIGTERM/SIGINT stop it.
 * Only loopback addresses are accepted.
 */
const path = require('node:path');
const fs = require('node:fs');

function arg(name, envName, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (envName && process.env[envName]) return process.env[envName];
  return def;
}

const address = arg('address', null, '127.0.0.1');
const port = Number(arg('port', 'S3RVER_PORT', '0'));
const directory = arg('directory', 'S3RVER_DIRECTORY', null);
const accessKey = arg('access-key', 'S3RVER_ACCESS_KEY', null);
const secretKey = arg('secret-key', 'S3RVER_SECRET_KEY', null);

function die(msg) {
  process.stderr.write(`s3rver: ${msg}\n`);
  process.exit(2);
}
if (!/^127\.\d+\.\d+\.\d+$/.test(address)) die(`--address must be a loopback IPv4 address, not ${address}`);
if (!Number.isInteger(port) || port < 0 || port > 65535) die('--port must be 0..65535');
if (!directory) die('--directory is required');
if (!accessKey || !secretKey) die('--access-key and --secret-key (or S3RVER_ACCESS_KEY/S3RVER_SECRET_KEY) are required');

const pkg = path.dirname(require.resolve('@20minutes/s3rver/package.json'));
const S3rver = require(pkg);
const AWSAccount = require(path.join(pkg, 'lib/models/account'));

/* One account, our key pair only. */
const account = AWSAccount.DUMMY_ACCOUNT;
for (const id of [...account.accessKeys.keys()]) account.revokeAccessKey(id);
account.createKeyPair(accessKey, secretKey);

fs.mkdirSync(directory, { recursive: true });
const server = new S3rver({
  address,
  port,
  directory,
  vhostBuckets: false,
  silent: true,
  allowMismatchedSignatures: false,
});

server.run().then(
  (a) => {
    process.stdout.write(`s3rver listening on http://${a.address}:${a.port}\n`);
    const stop = () => server.close().then(() => process.exit(0), () => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
  (e) => die(e.message)
);
