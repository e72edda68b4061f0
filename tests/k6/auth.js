// k6 auth flow: register -> login -> refresh -> logout, up to 100 VUs.
// Thresholds: p95 < 500 ms, errors < 1%. The server's per-IP rate limit on
// /auth/* (10/s, burst 20 by default) must be raised for a load test from
// one address, e.g. storm serve --auth-rate 100000 --auth-burst 100000.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 tests/k6/auth.js
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };

export const options = {
  stages: [
    { duration: '30s', target: 100 },
    { duration: '1m', target: 100 },
    { duration: '15s', target: 0 },
  ],
  thresholds: {
    http_req_duration: ['p(95)<500'],
    http_req_failed: ['rate<0.01'],
  },
};

export default function () {
  const username = `k6_${__VU}_${__ITER}_${Date.now() % 1000000}`;
  const password = 'k6-password-123';
  const reg = http.post(`${BASE_URL}/auth/register`, JSON.stringify({ username, password }), JSON_HEADERS);
  check(reg, { 'register 201': (r) => r.status === 201 });

  const login = http.post(`${BASE_URL}/auth/login`, JSON.stringify({ username, password }), JSON_HEADERS);
  check(login, { 'login 200': (r) => r.status === 200 });
  const tokens = login.json();

  const refreshed = http.post(`${BASE_URL}/auth/refresh`,
    JSON.stringify({ refresh_token: tokens.refresh_token }), JSON_HEADERS);
  check(refreshed, { 'refresh 200': (r) => r.status === 200 });

  const logout = http.post(`${BASE_URL}/auth/logout`,
    JSON.stringify({ refresh_token: refreshed.json().refresh_token }), JSON_HEADERS);
  check(logout, { 'logout 204': (r) => r.status === 204 });
  sleep(1);
}
