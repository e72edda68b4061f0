'use strict';
/*
 * node-ws-room.js — the room protocol (README.md) on Node's http server
 * and the `ws` package: rooms are a Map of room id → Set of sockets. A
 * valid broadcast is serialized once and turned into one Buffer, which
 * every member's socket sends as is (ws frames it per socket: it has no
 * shared-frame publish).
 *
 *   node bench/peers/node-ws-room.js --port 9002
 *
 * Prints `listening <port>` once bound (127.0.0.1 only); SIGTERM or SIGINT
 * closes every connection and exits 0.
 */
const http = require('node:http');
const { WebSocketServer } = require('ws');
const P = require('./room-protocol.js');

const port = P.portFromArgs(process.argv.slice(2), process.env);
const rooms = new Map(); /* room id → Set<WebSocket> */

function reject(socket, status, reason) {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/* Plain HTTP: the same answers as Bun's fetch handler gives. */
const server = http.createServer((req, res) => {
  let status = 426;
  let text = 'a WebSocket upgrade is required';
  if (P.pathOf(req.url) !== '/ws') [status, text] = [404, 'not found'];
  else if (!P.roomOf(req.url)) [status, text] = [400, 'room must be a positive integer'];
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(`${text}\n`);
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: P.MAX_PAYLOAD });

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  if (P.pathOf(req.url) !== '/ws') return reject(socket, 404, 'not found');
  const room = P.roomOf(req.url);
  if (!room) return reject(socket, 400, 'room must be a positive integer');
  wss.handleUpgrade(req, socket, head, (ws) => join(ws, room));
});

function publish(room, event) {
  const members = rooms.get(room);
  if (!members) return;
  const frame = Buffer.from(event, 'utf8');
  for (const ws of members) {
    /* STORM closes a client with 1 MiB unsent; so does this peer. */
    if (ws.bufferedAmount > P.OUTBUF_LIMIT) ws.terminate();
    else ws.send(frame, { binary: false });
  }
}

function join(ws, room) {
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on('error', () => {});
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0 && rooms.get(room) === members) rooms.delete(room);
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.close(1003, 'binary frames are not supported');
    const r = P.handleText(data.toString('utf8'), room);
    if (r.error) ws.send(r.error);
    else publish(room, r.event);
  });
  ws.send(P.HELLO);
}

function stop() {
  for (const members of rooms.values()) for (const ws of members) ws.terminate();
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
