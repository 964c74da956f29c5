/**
 * Issue 9: a `text/plain` body got 400 (fastify's built-in text parser let it through to schema validation)
 * instead of the documented 415 SV_ERR_API_UNSUPPORTED_MEDIA_TYPE. Bodies are JSON only.
 */
import t from 'tap';
import { GROUP, startTestAppliance } from '../api/helpers.js';

t.test('text/plain and other non-JSON bodies get 415 with a code', async (t) => {
  const a = await startTestAppliance(t);
  for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
    const r = await a.call('admin', 'POST', '/api/v1/groups', JSON.stringify(GROUP), { 'content-type': type });
    t.equal(r.statusCode, 415, `${type}: 415`);
    t.equal(r.json().code, 'SV_ERR_API_UNSUPPORTED_MEDIA_TYPE', `${type}: coded`);
  }
  t.equal((await a.call('admin', 'POST', '/api/v1/groups', GROUP)).statusCode, 201, 'the same body as JSON is accepted');
});
