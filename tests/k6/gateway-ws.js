// k6 WebSocket flow: connect, join a channel, send 5 messages (each acked),
// up to 200 VUs. Threshold: connect p95 < 1000 ms.
// Each VU registers its own user in setup-free fashion (first iteration).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 tests/k6/gateway-ws.js
import http from 'k6/http';
import ws from 'k6/ws';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const WS_URL = BASE_URL.replace(/^http/, 'ws');
const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };

export const options = {
  stages: [
    { duration: '30s', target: 200 },
    { duration: '1m', target: 200 },
    { duration: '15s', target: 0 },
  ],
  thresholds: {
    ws_connecting: ['p(95)<1000'],
    checks: ['rate>0.99'],
  },
};

// One shared public channel, created by the setup user.
export function setup() {
  const username = `k6_owner_${Date.now() % 1000000}`;
  const password = 'k6-password-123';
  http.post(`${BASE_URL}/auth/register`, JSON.stringify({ username, password }), JSON_HEADERS);
  const token = http.post(`${BASE_URL}/auth/login`, JSON.stringify({ username, password }), JSON_HEADERS).json().access_token;
  const ch = http.post(`${BASE_URL}/channels`, JSON.stringify({ name: `k6-${username}` }),
    { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` } });
  return { channelId: ch.json().channel.id };
}

const vuToken = {};

function tokenFor(vu) {
  if (vuToken[vu]) return vuToken[vu];
  const username = `k6_ws_${vu}_${Date.now() % 1000000}`;
  const password = 'k6-password-123';
  http.post(`${BASE_URL}/auth/register`, JSON.stringify({ username, password }), JSON_HEADERS);
  vuToken[vu] = http.post(`${BASE_URL}/auth/login`, JSON.stringify({ username, password }), JSON_HEADERS).json().access_token;
  return vuToken[vu];
}

export default function (data) {
  const token = tokenFor(__VU);
  const join = http.post(`${BASE_URL}/channels/${data.channelId}/join`, null,
    { headers: { Authorization: `Bearer ${token}` } });
  check(join, { 'join 200': (r) => r.status === 200 });

  const res = ws.connect(`${WS_URL}/ws?access_token=${token}`, {}, (socket) => {
    let acked = 0;
    socket.on('message', (raw) => {
      const m = JSON.parse(raw);
      if (m.op === 'hello') {
        for (let i = 0; i < 5; i++) {
          socket.send(JSON.stringify({ op: 'send', channel_id: data.channelId, body: `k6 ${__VU}/${__ITER}/${i}`,
            nonce: `${__VU}-${__ITER}-${i}`, ref: i }));
        }
      } else if (m.op === 'ack') {
        acked++;
        if (acked === 5) socket.close(1000);
      }
    });
    socket.setTimeout(() => socket.close(1000), 10000);
    socket.on('close', () => check(acked, { '5 acks': (n) => n === 5 }));
  });
  check(res, { 'upgrade 101': (r) => r && r.status === 101 });
}
