/**
 * Issue 9: ten bogus requests from any local process locked out every valid token from 127.0.0.1 for 60 s
 * (Prometheus and the CLI included). Now only failed attempts are refused once an address is over the limit;
 * a request with a valid token always passes.
 */
import t from 'tap';
import { startTestAppliance } from '../api/helpers.js';

t.test('bogus requests do not lock out valid tokens from the same address', async (t) => {
  const a = await startTestAppliance(t); // default limits: 10 failures a minute
  for (let i = 0; i < 10; i++) t.equal((await a.call({ token: 'svt_bogus' }, 'GET', '/api/v1/jobs')).statusCode, 401);
  const limited = await a.call({ token: 'svt_bogus' }, 'GET', '/api/v1/jobs');
  t.equal(limited.statusCode, 429, 'the bogus client is throttled');
  t.equal(limited.json().code, 'SV_ERR_API_RATE_LIMITED');
  t.equal((await a.call(null, 'GET', '/api/v1/jobs')).statusCode, 429, 'so is a request without a token');
  t.equal((await a.call('viewer', 'GET', '/metrics')).statusCode, 200, 'Prometheus (viewer token) still scrapes');
  t.equal((await a.call('admin', 'GET', '/api/v1/status')).statusCode, 200, 'the CLI (admin token) still works');
  t.equal((await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'gc' })).statusCode, 202, 'an operator still starts jobs');
  t.equal((await a.call({ token: 'svt_bogus' }, 'GET', '/api/v1/jobs')).statusCode, 429, 'the bogus client still is');
});
