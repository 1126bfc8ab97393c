// errors.test.mjs - every request error leaves as an OpenAI error object
// with the right status, type and param; the server stays up after each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MODEL, N_CTX, QUEUE, auth, client, get, post, user, assertError, sse, SHORT } from './lib.mjs';

const CHAT = '/v1/chat/completions';
const ok = { model: MODEL, messages: user('hi'), max_tokens: 2 };

test('malformed JSON, non-object bodies, invalid UTF-8 -> 400', async () => {
  for (const body of ['{"messages": [', '[1,2]', '', 'null', '{"messages":[{"role":"user","content":"\\ud800"}]}'])
    assertError(assert, await post(CHAT, body), 400, null);
  const bad = Buffer.concat([Buffer.from('{"model":"m","messages":[{"role":"user","content":"'),
    Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]);
  const e = assertError(assert, await post(CHAT, new Uint8Array(bad)), 400, null);
  assert.match(e.message, /UTF-8/);
  assert.equal(e.type, 'invalid_request_error');
});

test('field validation names the field', async () => {
  const cases = [
    [{ model: MODEL }, 'messages'],
    [{ ...ok, messages: [] }, 'messages'],
    [{ ...ok, messages: 'hi' }, 'messages'],
    [{ ...ok, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    [{ ...ok, messages: [{ role: 'user' }] }, 'messages[0].content'],
    [{ ...ok, messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
    [{ ...ok, n: 2 }, 'n'],
    [{ ...ok, max_tokens: -1 }, 'max_tokens'],
    [{ ...ok, max_tokens: 1e12 }, 'max_tokens'],
    [{ ...ok, max_tokens: 'many' }, 'max_tokens'],
    [{ ...ok, max_completion_tokens: 0 }, 'max_completion_tokens'],
    [{ ...ok, temperature: 'warm' }, 'temperature'],
    [{ ...ok, temperature: -1 }, 'temperature'],
    [{ ...ok, top_p: 2 }, 'top_p'],
    [{ ...ok, stream: 'yes' }, 'stream'],
    [{ ...ok, stop: 7 }, 'stop'],
    [{ ...ok, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    [{ ...ok, logprobs: true, top_logprobs: -1 }, 'top_logprobs'],
    [{ ...ok, response_format: { type: 'yaml' } }, 'response_format.type'],
    [{ ...ok, tool_choice: 'sometimes' }, 'tool_choice'],
    [{ ...ok, tools: [{ type: 'function' }] }, 'tools[0]'],
  ];
  for (const [body, param] of cases) {
    const e = assertError(assert, await post(CHAT, body), 400, param);
    assert.equal(e.type, 'invalid_request_error');
  }
  const n = assertError(assert, await post(CHAT, { ...ok, n: 3 }), 400, 'n');
  assert.match(n.message, /n=1/);
  const c = await post('/v1/completions', { model: MODEL, prompt: ['a', 'b'], max_tokens: 2 });
  assertError(assert, c, 400, 'prompt');
  assertError(assert, await post('/v1/completions', { model: MODEL, prompt: [1, -5] }), 400, 'prompt');
  // Token ids outside the vocabulary are the engine's check.
  const big = await post('/v1/completions', { model: MODEL, prompt: [1, 2000000000], max_tokens: 2 });
  assertError(assert, big, 400);
  // The openai client turns these into BadRequestError.
  await assert.rejects(client.chat.completions.create({ ...ok, n: 2 }), (err) => err.status === 400);
});

test('prompt longer than the context -> 400 exceed_context_size_error, never truncated', async () => {
  const long = 'hello world '.repeat(N_CTX);
  for (const [path, body] of [[CHAT, { ...ok, messages: user(long) }],
    ['/v1/completions', { model: MODEL, prompt: long, max_tokens: 2 }]]) {
    const e = assertError(assert, await post(path, body), 400);
    assert.equal(e.code, 'exceed_context_size_error');
    assert.equal(e.n_ctx, N_CTX);
    assert.ok(e.n_prompt_tokens > N_CTX, JSON.stringify(e));
  }
  const s = await post(CHAT, { ...ok, messages: user(long), stream: true });
  assert.equal(s.status, 400);
});

test('body over the limit -> 413', async () => {
  const huge = JSON.stringify({ ...ok, messages: user('x'.repeat(9 << 20)) });
  const r = await post(CHAT, huge);
  assert.equal(r.status, 413);
  assert.ok(r.json.error);
  assert.equal((await get('/health', {})).status, 200);
});

test('response_format json_object: output is checked as JSON', async () => {
  // A synthetic model does not write JSON; the server must say so rather
  // than hand back non-JSON as if it were.
  const r = await post(CHAT, { ...ok, max_tokens: 4, temperature: 0, response_format: { type: 'json_object' } });
  if (r.status === 200) JSON.parse(r.json.choices[0].message.content);
  else {
    const e = assertError(assert, r, 500, 'response_format');
    assert.equal(e.code, 'invalid_json_output');
  }
});

test('queue full -> 503 with Retry-After; the server recovers', { skip: SHORT && 'short run' }, async () => {
  const n = QUEUE + 6;
  const ctl = new AbortController();
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    fetch(BASE + CHAT, { method: 'POST', signal: ctl.signal,
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ model: MODEL, messages: user(`q${i}`), max_tokens: 100000, ignore_eos: true,
        stream: true }) }).then(async (r) => {
      const ra = r.headers.get('retry-after');
      if (r.status !== 200) return { status: r.status, ra, body: await r.json() };
      return { status: r.status };
    })));
  ctl.abort();
  const busy = results.filter((r) => r.status === 503);
  assert.ok(results.every((r) => r.status === 200 || r.status === 503), JSON.stringify(results.map((r) => r.status)));
  assert.ok(busy.length >= 1, 'some requests over the queue are refused');
  for (const b of busy) {
    assert.ok(Number(b.ra) >= 1);
    assert.ok(b.body.error && b.body.error.message);
  }
  const { until } = await import('./lib.mjs');
  await until((m) => m.axserve_requests_running === 0 && m.axserve_requests_queued === 0);
  const after = await post(CHAT, ok);
  assert.equal(after.status, 200);
});
