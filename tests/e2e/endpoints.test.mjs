// endpoints.test.mjs - every non-generation route, authentication, CORS,
// 404/405, and the openai client's models API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, KEY, MODEL, client, get, post, assertError, metrics, user } from './lib.mjs';

test('/health is public and ok', async () => {
  const r = await get('/health', {});
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok' });
});

test('/v1/models works without and with a key, and via the openai client', async () => {
  for (const h of [{}, { Authorization: `Bearer ${KEY}` }, { Authorization: 'Bearer wrong' }]) {
    const r = await get('/v1/models', h);
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
    assert.ok(r.json.data.length >= 1);
    const m = r.json.data[0];
    assert.equal(m.id, MODEL);
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    assert.equal(typeof m.owned_by, 'string');
  }
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
  const one = await client.models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
  const missing = await get('/v1/models/no-such-model', {});
  assertError(assert, missing, 404);
});

test('API key: 401 without or with a wrong key; Bearer and X-Api-Key both work', async () => {
  const body = { content: 'hello' };
  let r = await post('/tokenize', body, {});
  let e = assertError(assert, r, 401);
  assert.equal(e.type, 'authentication_error');
  r = await post('/tokenize', body, { Authorization: 'Bearer nope' });
  assertError(assert, r, 401);
  r = await post('/tokenize', body, { 'X-Api-Key': 'nope' });
  assertError(assert, r, 401);
  r = await post('/tokenize', body, { Authorization: `Bearer ${KEY}` });
  assert.equal(r.status, 200);
  r = await post('/tokenize', body, { 'X-Api-Key': KEY });
  assert.equal(r.status, 200);
  r = await get('/metrics', {});
  assertError(assert, r, 401);
  // The openai client with a bad key surfaces a 401 AuthenticationError.
  const { default: OpenAI } = await import('../oracle/node_modules/openai/index.mjs');
  const bad = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: 'bad', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: MODEL, messages: user('x'), max_tokens: 1 }),
    (err) => err.status === 401);
});

test('unknown route is 404, wrong method 405, both OpenAI error objects', async () => {
  assertError(assert, await get('/v1/nothing'), 404);
  assertError(assert, await post('/health', {}), 405);
  const r = await get('/v1/chat/completions');
  assertError(assert, r, 405);
  assert.match(r.headers.get('allow'), /POST/);
});

test('CORS preflight and headers', async () => {
  const r = await fetch(BASE + '/v1/chat/completions', {
    method: 'OPTIONS',
    headers: { Origin: 'http://example.com', 'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization, content-type' },
  });
  assert.ok(r.status === 204 || r.status === 200);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  assert.match(r.headers.get('access-control-allow-methods'), /POST/);
  assert.match(r.headers.get('access-control-allow-headers').toLowerCase(), /authorization/);
  const h = await fetch(BASE + '/health', { headers: { Origin: 'http://example.com' } });
  assert.equal(h.headers.get('access-control-allow-origin'), '*');
});

test('/tokenize and /detokenize round-trip (llama.cpp shapes)', async () => {
  const text = 'Hello, world! héllo 你好 🙂';
  const t = await post('/tokenize', { content: text });
  assert.equal(t.status, 200);
  assert.ok(Array.isArray(t.json.tokens) && t.json.tokens.length > 0);
  assert.ok(t.json.tokens.every(Number.isInteger));
  const d = await post('/detokenize', { tokens: t.json.tokens });
  assert.equal(d.status, 200);
  assert.equal(d.json.content, text);
  const p = await post('/tokenize', { content: text, with_pieces: true });
  assert.equal(p.json.tokens.length, t.json.tokens.length);
  assert.deepEqual(p.json.tokens.map((x) => x.id), t.json.tokens);
  // Pieces that are whole UTF-8 are strings; their concatenation with the
  // byte arrays decoded gives the text back.
  const bytes = [];
  for (const x of p.json.tokens)
    if (typeof x.piece === 'string') bytes.push(...Buffer.from(x.piece, 'utf8'));
    else bytes.push(...x.piece);
  assert.equal(Buffer.from(bytes).toString('utf8'), text);
  assertError(assert, await post('/tokenize', { content: 5 }), 400);
  assertError(assert, await post('/detokenize', { tokens: [-1] }), 400);
  assertError(assert, await post('/detokenize', { tokens: [1e9] }), 400);
  assertError(assert, await post('/detokenize', { tokens: 'x' }), 400);
});

test('/apply-template renders the prompt', async () => {
  const r = await post('/apply-template', { messages: user('Hi there') });
  assert.equal(r.status, 200);
  assert.equal(typeof r.json.prompt, 'string');
  assert.ok(r.json.prompt.includes('Hi there'));
  assert.ok(r.json.prompt.includes('<|im_start|>'));
  const nothink = await post('/apply-template', { messages: user('Hi there'),
    chat_template_kwargs: { enable_thinking: false } });
  assert.ok(nothink.json.prompt.endsWith('<think>\n\n</think>\n\n'), JSON.stringify(nothink.json));
  assertError(assert, await post('/apply-template', { messages: [] }), 400, 'messages');
});

test('/metrics is Prometheus text with the documented series', async () => {
  const r = await get('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/plain/);
  assert.match(r.text, /# TYPE axserve_time_to_first_token_seconds histogram/);
  const m = await metrics();
  for (const k of ['axserve_requests_total', 'axserve_requests_running', 'axserve_requests_queued',
    'axserve_kv_slots_total', 'axserve_kv_slots_used', 'axserve_completion_tokens_total',
    'axserve_prompt_tokens_total', 'axserve_time_to_first_token_seconds_count',
    'axserve_decode_tokens_per_second_count', 'axserve_time_to_first_token_seconds_bucket{le="+Inf"}'])
    assert.ok(k in m, `missing ${k}`);
  assert.ok(m.axserve_kv_slots_total >= 1);
});
