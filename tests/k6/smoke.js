// k6 smoke test: 1 VU, 1 iteration — the server is up and its API answers.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 tests/k6/smoke.js
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';

export const options = {
  vus: 1,
  iterations: 1,
  thresholds: { checks: ['rate==1.0'] },
};

export default function () {
  const health = http.get(`${BASE_URL}/healthz`);
  check(health, { 'healthz 200': (r) => r.status === 200 });
  const ready = http.get(`${BASE_URL}/readyz`);
  check(ready, { 'readyz 200': (r) => r.status === 200 });
  const metrics = http.get(`${BASE_URL}/metrics`);
  check(metrics, { 'metrics exposes storm_http_requests_total': (r) => r.body.includes('storm_http_requests_total') });
}
