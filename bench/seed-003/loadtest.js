// Seed 003's k6 load test, reconstructed from what its run printed: 10 looping virtual users for
// 1 minute, each POSTing `{id, message: "Hello World", timestamp: <epoch seconds>}` as JSON to
// API_ENDPOINT, with two checks ("status was 200", "transaction time OK"). Run it unchanged:
//   k6 run -e API_ENDPOINT=$(scripts/local url pipeline) bench/seed-003/loadtest.js
// (k6's own --vus/--duration flags override the options below, as CI's short run does.)
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';

export const options = {
  vus: 10,
  duration: '1m',
};

export default function () {
  // Unique per request across VUs: the pipeline's items table is keyed by id.
  const id = `${exec.vu.idInTest}-${exec.vu.iterationInScenario}-${Date.now()}`;
  const payload = JSON.stringify({
    id: id,
    message: 'Hello World',
    timestamp: Math.floor(Date.now() / 1000),
  });
  const res = http.post(__ENV.API_ENDPOINT, payload, {
    headers: { 'Content-Type': 'application/json' },
  });
  // Not in the original: with LOG_ACCEPTED=1 each accepted id is logged (k6 --log-output=file=…),
  // so a test can check that every one of them came through the chain once.
  if (__ENV.LOG_ACCEPTED && res.status === 200) console.log(id);
  check(res, {
    'status was 200': (r) => r.status === 200,
    'transaction time OK': (r) => r.timings.duration < 2000,
  });
}
