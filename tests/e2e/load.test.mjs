// load.test.mjs - a bounded load on loopback: a few client loops for at
// most LOAD_REQUESTS requests or LOAD_SECONDS, mixing streams, plain
// completions and cheap GETs. Passes if every answer is 200 or a 503
// (queue full), nothing crashes, and the server is idle and healthy after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL, get, post, sse, user, until, SHORT } from './lib.mjs';

const REQUESTS = Number(process.env.LOAD_REQUESTS || (SHORT ? 16 : 60));
const SECONDS = Number(process.env.LOAD_SECONDS || 20);
const CLIENTS = 6;

test('bounded load: only 200/503, server idle and healthy afterwards', async () => {
  const deadline = Date.now() + SECONDS * 1000;
  let issued = 0;
  const counts = {};
  async function loop(w) {
    while (issued < REQUESTS && Date.now() < deadline) {
      const k = issued++;
      let status;
      switch (k % 4) {
        case 0: status = (await sse('/v1/chat/completions', { model: MODEL, messages: user(`load ${w} ${k}`),
          max_tokens: 8, stream: true })).status; break;
        case 1: status = (await post('/v1/chat/completions', { model: MODEL, messages: user(`load ${k}`),
          max_tokens: 4 })).status; break;
        case 2: status = (await post('/v1/completions', { model: MODEL, prompt: `load ${k}`, max_tokens: 4 })).status; break;
        default: status = (await get('/health', {})).status;
      }
      counts[status] = (counts[status] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, (_, w) => loop(w)));
  for (const s of Object.keys(counts)) assert.ok(s === '200' || s === '503', JSON.stringify(counts));
  assert.ok((counts[200] || 0) > 0);
  await until((m) => m.axserve_requests_running === 0 && m.axserve_requests_queued === 0);
  assert.equal((await get('/health', {})).status, 200);
  console.log(`load: ${JSON.stringify(counts)}`);
});
