// k6 media upload: a 1x1 PNG through the gateway (POST /media/upload,
// multipart/form-data, field `file`), up to 30 VUs. Each VU registers and
// logs in once (first iteration), then uploads every iteration.
// Thresholds: p95 < 2000 ms, errors < 5%. The server decides the type from
// the bytes (docs/media.md): the answer must say mime image/png.
// Raise the per-IP auth limit for the VUs' logins from one address, e.g.
// storm serve --auth-rate 100000 --auth-burst 100000.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 tests/k6/media-upload.js
import http from 'k6/http';
import encoding from 'k6/encoding';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };

// A valid 1x1 RGBA PNG (IHDR, zlib IDAT, IEND, with their CRCs): 70 bytes,
// the same bytes storm-load's media scenario sends.
const PNG = encoding.b64decode(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==');

export const options = {
  stages: [
    { duration: '30s', target: 30 },
    { duration: '1m', target: 30 },
    { duration: '15s', target: 0 },
  ],
  thresholds: {
    http_req_duration: ['p(95)<2000'],
    http_req_failed: ['rate<0.05'],
  },
};

const vuToken = {};

function tokenFor(vu) {
  if (vuToken[vu]) return vuToken[vu];
  const username = `k6_media_${vu}_${Date.now() % 1000000}`;
  const password = 'k6-password-123';
  const reg = http.post(`${BASE_URL}/auth/register`, JSON.stringify({ username, password }), JSON_HEADERS);
  check(reg, { 'register 201': (r) => r.status === 201 });
  const login = http.post(`${BASE_URL}/auth/login`, JSON.stringify({ username, password }), JSON_HEADERS);
  check(login, { 'login 200': (r) => r.status === 200 });
  vuToken[vu] = login.status === 200 ? login.json().access_token : '';
  return vuToken[vu];
}

export default function () {
  const token = tokenFor(__VU);
  // An object holding http.file makes k6 send multipart/form-data.
  const res = http.post(`${BASE_URL}/media/upload`,
    { file: http.file(PNG, `k6-${__VU}-${__ITER}.png`, 'image/png') },
    { headers: { Authorization: `Bearer ${token}` } });
  check(res, {
    'upload 201': (r) => r.status === 201,
    'mime image/png': (r) => r.status === 201 && r.json().mime === 'image/png',
  });
}
