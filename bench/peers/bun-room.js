'use strict';
/*
 * bun-room.js — the room protocol (README.md) on Bun's built-in server
 * (uWebSockets underneath): a connection subscribes to topic "r<C>" and a
 * valid broadcast is handed to server.publish, which serializes nothing
 * (the event string is built once here) and frames it once for every
 * subscriber, the sender included (ws.publish would skip the sender).
 *
 *   node_modules/.bin/bun bench/peers/bun-room.js --port 9001
 *
 * Prints `listening <port>` once bound (127.0.0.1 only); SIGTERM or SIGINT
 * closes every connection and exits 0.
 */
const P = require('./room-protocol.js');

const port = P.portFromArgs(process.argv.slice(2), process.env);

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, srv) {
    const url = req.url.slice(req.url.indexOf('/', req.url.indexOf('//') + 2));
    if (P.pathOf(url) !== '/ws') return new Response('not found\n', { status: 404 });
    const room = P.roomOf(url);
    if (!room) return new Response('room must be a positive integer\n', { status: 400 });
    if (srv.upgrade(req, { data: { room } })) return undefined;
    return new Response('a WebSocket upgrade is required\n', { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    idleTimeout: P.IDLE_TIMEOUT_S,
    maxPayloadLength: P.MAX_PAYLOAD,
    /* STORM closes a client with 1 MiB unsent; so does this peer. */
    backpressureLimit: P.OUTBUF_LIMIT,
    closeOnBackpressureLimit: true,
    sendPings: true,
    open(ws) {
      ws.send(P.HELLO);
      ws.subscribe('r' + ws.data.room);
    },
    message(ws, msg) {
      if (typeof msg !== 'string') {
        ws.close(1003, 'binary frames are not supported');
        return;
      }
      const r = P.handleText(msg, ws.data.room);
      if (r.error) ws.send(r.error);
      else server.publish('r' + ws.data.room, r.event);
    },
  },
});

function stop() {
  server.stop(true); /* closes the listener and every connection */
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

process.stdout.write(`listening ${server.port}\n`);
