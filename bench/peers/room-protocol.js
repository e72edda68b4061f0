'use strict';
/*
 * room-protocol.js — what bun-room.js and node-ws-room.js share: the
 * command line, the room query parameter, and the checks of a client
 * message. The protocol is in README.md; it is the subset of STORM's
 * `broadcast` op (docs/protocol.md) a pub/sub server can serve without
 * accounts, so `storm-load --peer` can compare like with like.
 *
 * Plain CommonJS with no runtime-specific API: Bun and Node both load it.
 */

/* The limits STORM applies to the same traffic (docs/protocol.md, Limits). */
const MAX_PAYLOAD = 64 * 1024; /* one client message */
const BODY_MAX_CHARS = 4000; /* a broadcast body */
const OUTBUF_LIMIT = 1024 * 1024; /* unsent bytes before a slow consumer is closed */
const IDLE_TIMEOUT_S = 120;

/* --port N, else PORT, else 0 (any free port: the one bound is printed). */
function portFromArgs(argv, env) {
  let raw = env.PORT;
  const i = argv.indexOf('--port');
  if (i >= 0) raw = argv[i + 1];
  if (raw === undefined || raw === '') return 0;
  if (!/^[0-9]+$/.test(raw) || Number(raw) > 65535) {
    throw new Error(`bad port ${JSON.stringify(raw)}: expected --port N or PORT with 0-65535`);
  }
  return Number(raw);
}

/*
 * The room of `/ws?room=C`: a canonical positive decimal integer within
 * JavaScript's exact range (what a JSON channel_id can carry), else 0.
 */
function roomOf(url) {
  const q = url.indexOf('?');
  if (q < 0) return 0;
  const room = new URLSearchParams(url.slice(q + 1)).get('room');
  if (room === null || !/^[1-9][0-9]{0,15}$/.test(room)) return 0;
  const n = Number(room);
  return Number.isSafeInteger(n) ? n : 0;
}

function pathOf(url) {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/* 1 to BODY_MAX_CHARS characters (code points, as STORM counts them). */
function bodyOk(body) {
  if (typeof body !== 'string' || body.length === 0) return false;
  if (body.length <= BODY_MAX_CHARS) return true; /* code points <= UTF-16 units */
  if (body.length > BODY_MAX_CHARS * 2) return false;
  let n = 0;
  for (const _ of body) if (++n > BODY_MAX_CHARS) return false;
  return true;
}

const BAD_REQUEST = JSON.stringify({ op: 'error', code: 'bad_request' });
const NOT_FOUND = JSON.stringify({ op: 'error', code: 'not_found' });
const HELLO = JSON.stringify({ op: 'hello' });

/*
 * Checks one text message of a connection in `room`. Returns
 * {event} (the serialized broadcast to publish to the room) or {error}
 * (the serialized error for the sender). A channel_id other than the
 * connection's room is not_found, as STORM answers a non-member.
 */
function handleText(text, room) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return { error: BAD_REQUEST };
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m) || m.op !== 'broadcast') {
    return { error: BAD_REQUEST };
  }
  const c = m.channel_id;
  if (!Number.isSafeInteger(c) || c <= 0 || !bodyOk(m.body)) return { error: BAD_REQUEST };
  if (c !== room) return { error: NOT_FOUND };
  return { event: JSON.stringify({ op: 'broadcast', channel_id: c, user_id: 0, body: m.body }) };
}

module.exports = {
  MAX_PAYLOAD,
  BODY_MAX_CHARS,
  OUTBUF_LIMIT,
  IDLE_TIMEOUT_S,
  HELLO,
  BAD_REQUEST,
  portFromArgs,
  roomOf,
  pathOf,
  handleText,
};
