// chat.test.mjs - generation through /v1/chat/completions and
// /v1/completions: response shapes, stream invariants, stream == non-stream
// at temperature 0, seeds, logprobs, the prefix cache, concurrency. The
// default model is synthetic (random weights), so text is gibberish:
// these tests assert structure, invariants and equalities, never wording.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL, client, post, sse, user, metrics, SHORT } from './lib.mjs';

const NOTHINK = { chat_template_kwargs: { enable_thinking: false } };

function checkUsage(u) {
  assert.equal(typeof u.prompt_tokens, 'number');
  assert.equal(typeof u.completion_tokens, 'number');
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.equal(typeof u.prompt_tokens_details.cached_tokens, 'number');
  assert.equal(typeof u.completion_tokens_details.reasoning_tokens, 'number');
  assert.ok(u.prompt_tokens > 0);
}

function checkChatCompletion(c) {
  assert.match(c.id, /^chatcmpl-/);
  assert.equal(c.object, 'chat.completion');
  assert.equal(typeof c.created, 'number');
  assert.equal(c.model, MODEL);
  assert.equal(typeof c.system_fingerprint, 'string');
  assert.equal(c.choices.length, 1);
  const ch = c.choices[0];
  assert.equal(ch.index, 0);
  assert.equal(ch.message.role, 'assistant');
  assert.ok(typeof ch.message.content === 'string' || ch.message.content === null);
  assert.ok(['stop', 'length', 'tool_calls'].includes(ch.finish_reason));
  assert.ok('logprobs' in ch);
  checkUsage(c.usage);
}

// Checks the stream invariants on raw SSE payloads and returns the
// reassembled text and the chunks.
function checkChatStream(events, { usage }) {
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.length >= 2);
  const id = chunks[0].id, created = chunks[0].created;
  assert.match(id, /^chatcmpl-/);
  let content = '', reasoning = '', finish = null, usageChunk = null, finishIdx = -1;
  chunks.forEach((c, i) => {
    assert.equal(c.id, id, 'one id for the whole stream');
    assert.equal(c.created, created, 'one created for the whole stream');
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, MODEL);
    if (c.choices.length === 0) {
      assert.ok(c.usage, 'a chunk without choices is the usage chunk');
      assert.equal(usageChunk, null);
      usageChunk = c;
      assert.equal(i, chunks.length - 1, 'usage chunk is last before [DONE]');
      return;
    }
    assert.equal(c.usage, undefined);
    const ch = c.choices[0];
    if (i === 0) assert.equal(ch.delta.role, 'assistant', 'first delta has the role');
    else assert.equal(ch.delta.role, undefined);
    assert.equal(finish, null, 'nothing after the finish chunk but usage');
    if (typeof ch.delta.content === 'string') content += ch.delta.content;
    if (typeof ch.delta.reasoning_content === 'string') reasoning += ch.delta.reasoning_content;
    if (ch.finish_reason) { finish = ch.finish_reason; finishIdx = i; }
  });
  assert.ok(['stop', 'length', 'tool_calls'].includes(finish), 'a finish_reason arrives');
  if (usage) {
    assert.ok(usageChunk, 'usage chunk when include_usage');
    checkUsage(usageChunk.usage);
    assert.equal(finishIdx, chunks.length - 2);
  } else {
    assert.equal(usageChunk, null, 'no usage chunk unless asked');
    assert.equal(finishIdx, chunks.length - 1);
  }
  return { content, reasoning, finish, usage: usageChunk && usageChunk.usage, chunks };
}

test('non-stream chat completion has the OpenAI shape (openai client)', async () => {
  const c = await client.chat.completions.create({ model: MODEL, messages: user('Hello'),
    max_tokens: 8, temperature: 0 });
  checkChatCompletion(c);
  assert.ok(c.usage.completion_tokens <= 8);
  if (c.choices[0].finish_reason === 'length') assert.equal(c.usage.completion_tokens, 8);
});

test('any model name is accepted when one model is served', async () => {
  const c = await client.chat.completions.create({ model: 'gpt-4o', messages: user('x'), max_tokens: 2 });
  assert.equal(c.model, MODEL);
});

test('stream invariants, with and without include_usage (raw SSE)', async () => {
  for (const usage of [false, true]) {
    const body = { model: MODEL, messages: user('Count to five'), max_tokens: 10, temperature: 0,
      stream: true, ...(usage ? { stream_options: { include_usage: true } } : {}) };
    const r = await sse('/v1/chat/completions', body);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    const s = checkChatStream(r.events, { usage });
    if (usage) assert.ok(s.usage.completion_tokens <= 10);
  }
});

test('stream text == non-stream text at temperature 0, and max_completion_tokens is honoured', async () => {
  const base = { model: MODEL, messages: user('Tell me a story'), temperature: 0,
    max_completion_tokens: 12 };
  const a = await post('/v1/chat/completions', base);
  assert.equal(a.status, 200, a.text);
  checkChatCompletion(a.json);
  assert.ok(a.json.usage.completion_tokens <= 12);
  const r = await sse('/v1/chat/completions', { ...base, stream: true,
    stream_options: { include_usage: true } });
  const s = checkChatStream(r.events, { usage: true });
  const msg = a.json.choices[0].message;
  assert.equal(s.content, msg.content ?? '');
  assert.equal(s.reasoning, msg.reasoning_content ?? '');
  assert.equal(s.finish, a.json.choices[0].finish_reason);
  assert.equal(s.usage.completion_tokens, a.json.usage.completion_tokens);
  // Same again through the openai client's stream iterator.
  let text = '';
  let finish = null;
  const stream = await client.chat.completions.create({ ...base, stream: true });
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
    if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, msg.content ?? '');
  assert.equal(finish, a.json.choices[0].finish_reason);
});

test('temperature 0 is greedy (repeatable), a seed makes sampling repeatable', async () => {
  const greedy = { model: MODEL, messages: user('abc'), temperature: 0, max_tokens: 10 };
  const g1 = await client.chat.completions.create(greedy);
  const g2 = await client.chat.completions.create(greedy);
  assert.equal(g1.choices[0].message.content, g2.choices[0].message.content);
  const seeded = { model: MODEL, messages: user('abc'), temperature: 1.0, top_p: 1, top_k: 0,
    seed: 1234, max_tokens: 10 };
  const s1 = await client.chat.completions.create(seeded);
  const s2 = await client.chat.completions.create(seeded);
  assert.equal(s1.choices[0].message.content, s2.choices[0].message.content);
  assert.equal(s1.usage.completion_tokens, s2.usage.completion_tokens);
});

test('no-think mode: no reasoning_content, no <think> in content', async () => {
  for (const extra of [NOTHINK, { reasoning_effort: 'none' }]) {
    const r = await post('/v1/chat/completions', { model: MODEL, messages: user('hi'), max_tokens: 8,
      temperature: 0, ...extra });
    assert.equal(r.status, 200);
    const m = r.json.choices[0].message;
    assert.ok(!('reasoning_content' in m) || m.reasoning_content.length > 0, 'no empty reasoning');
    assert.ok(!(m.content ?? '').includes('<think>'));
    assert.ok(!(m.content ?? '').includes('</think>'));
  }
});

test('chat logprobs: content entries with token, logprob, bytes, top_logprobs', async () => {
  const c = await client.chat.completions.create({ model: MODEL, messages: user('x'), max_tokens: 4,
    temperature: 0, logprobs: true, top_logprobs: 3 });
  const lp = c.choices[0].logprobs;
  assert.ok(lp && Array.isArray(lp.content));
  assert.equal(lp.content.length, c.usage.completion_tokens);
  for (const e of lp.content) {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0);
    assert.ok(Array.isArray(e.bytes) && e.bytes.every((b) => b >= 0 && b < 256));
    assert.equal(e.top_logprobs.length, 3);
    for (let i = 1; i < 3; i++) assert.ok(e.top_logprobs[i - 1].logprob >= e.top_logprobs[i].logprob);
    // Greedy: the chosen token is the most likely one.
    assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4);
  }
  // Stream: the same entries, spread over the chunks.
  const r = await sse('/v1/chat/completions', { model: MODEL, messages: user('x'), max_tokens: 4,
    temperature: 0, logprobs: true, top_logprobs: 3, stream: true });
  const tokens = [];
  for (const e of r.events.slice(0, -1)) {
    const ch = JSON.parse(e).choices[0];
    if (ch && ch.logprobs) tokens.push(...ch.logprobs.content.map((x) => x.token));
  }
  assert.deepEqual(tokens, lp.content.map((x) => x.token));
});

test('/v1/completions: string, token ids, legacy logprobs, stream', async () => {
  const c = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 6,
    temperature: 0, logprobs: 2 });
  assert.match(c.id, /^cmpl-/);
  assert.equal(c.object, 'text_completion');
  assert.equal(c.choices.length, 1);
  const ch = c.choices[0];
  assert.equal(typeof ch.text, 'string');
  assert.ok(['stop', 'length'].includes(ch.finish_reason));
  const lp = ch.logprobs;
  assert.equal(lp.tokens.length, c.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.equal(lp.top_logprobs.length, lp.tokens.length);
  assert.equal(lp.text_offset.length, lp.tokens.length);
  for (let i = 1; i < lp.text_offset.length; i++) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  // Token ids: the same prompt as ids gives the same greedy text.
  const t = await post('/tokenize', { content: 'Once upon a time' });
  const ids = await post('/v1/completions', { model: MODEL, prompt: t.json.tokens, max_tokens: 6, temperature: 0 });
  assert.equal(ids.status, 200, ids.text);
  assert.equal(ids.json.choices[0].text, ch.text);
  assert.equal(ids.json.usage.prompt_tokens, t.json.tokens.length);
  const nested = await post('/v1/completions', { model: MODEL, prompt: [t.json.tokens], max_tokens: 6, temperature: 0 });
  assert.equal(nested.json.choices[0].text, ch.text);
  const one = await post('/v1/completions', { model: MODEL, prompt: ['Once upon a time'], max_tokens: 6, temperature: 0 });
  assert.equal(one.json.choices[0].text, ch.text);
  // Stream: same text, one id, finish, [DONE].
  const r = await sse('/v1/completions', { model: MODEL, prompt: 'Once upon a time', max_tokens: 6,
    temperature: 0, stream: true, stream_options: { include_usage: true } });
  assert.equal(r.events.at(-1), '[DONE]');
  const chunks = r.events.slice(0, -1).map((e) => JSON.parse(e));
  let text = '', finish = null;
  for (const k of chunks) {
    assert.equal(k.id, chunks[0].id);
    assert.equal(k.object, 'text_completion');
    if (k.choices.length) { text += k.choices[0].text; finish = k.choices[0].finish_reason ?? finish; }
  }
  assert.equal(text, ch.text);
  assert.equal(finish, ch.finish_reason);
  assert.equal(chunks.at(-1).choices.length, 0);
  assert.equal(chunks.at(-1).usage.completion_tokens, c.usage.completion_tokens);
});

test('/v1/completions with a messages body answers as a chat completion', async () => {
  const r = await post('/v1/completions', { model: MODEL, messages: user('hi'), max_tokens: 4, temperature: 0 });
  assert.equal(r.status, 200, r.text);
  checkChatCompletion(r.json);
  const c = await post('/v1/chat/completions', { model: MODEL, messages: user('hi'), max_tokens: 4, temperature: 0 });
  assert.equal(r.json.choices[0].message.content, c.json.choices[0].message.content);
});

test('second turn of a conversation reuses the cached prefix', async () => {
  const msgs = [{ role: 'system', content: 'You are a terse assistant. '.repeat(8) },
    { role: 'user', content: 'First question, please answer.' }];
  const a = await client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 8,
    temperature: 0, ...NOTHINK });
  const turn2 = [...msgs, { role: 'assistant', content: a.choices[0].message.content ?? '' },
    { role: 'user', content: 'Second question.' }];
  const b = await client.chat.completions.create({ model: MODEL, messages: turn2, max_tokens: 8,
    temperature: 0, ...NOTHINK });
  assert.ok(b.usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(b.usage));
  assert.ok(b.usage.prompt_tokens_details.cached_tokens <= b.usage.prompt_tokens);
});

test('4 concurrent streams all complete with valid, distinct streams', { skip: SHORT && 'short run' }, async () => {
  const runs = await Promise.all([0, 1, 2, 3].map((i) => sse('/v1/chat/completions', {
    model: MODEL, messages: user(`stream number ${i}`), max_tokens: 12, temperature: 0, stream: true,
    stream_options: { include_usage: true } })));
  const ids = new Set();
  for (const r of runs) {
    assert.equal(r.status, 200);
    const s = checkChatStream(r.events, { usage: true });
    ids.add(s.chunks[0].id);
  }
  assert.equal(ids.size, 4);
  // Each equals its own non-stream answer (no cross-talk between slots).
  for (const i of [0, 3]) {
    const c = await post('/v1/chat/completions', { model: MODEL, messages: user(`stream number ${i}`),
      max_tokens: 12, temperature: 0 });
    const s = checkChatStream(runs[i].events, { usage: true });
    assert.equal(s.content, c.json.choices[0].message.content ?? '');
  }
});

test('client disconnect cancels the generation', async () => {
  const before = await metrics();
  const ctl = new AbortController();
  const maxTokens = 100000;
  let got = 0;
  await assert.rejects(sse('/v1/chat/completions', { model: MODEL, messages: user('go on forever'),
    max_tokens: maxTokens, ignore_eos: true, temperature: 1, stream: true }, {
    signal: ctl.signal, onEvent: () => { if (++got === 3) ctl.abort(); } }));
  const { until } = await import('./lib.mjs');
  const after = await until((m) =>
    m['axserve_requests_finished_total{reason="cancel"}'] > before['axserve_requests_finished_total{reason="cancel"}'] &&
    m.axserve_requests_running === 0);
  assert.ok(after.axserve_client_disconnects_total > before.axserve_client_disconnects_total);
  const generated = after.axserve_completion_tokens_total - before.axserve_completion_tokens_total;
  assert.ok(generated < maxTokens, `generated ${generated}`);
});

test('client disconnect cancels a non-stream generation too', async () => {
  const { until, BASE, auth } = await import('./lib.mjs');
  const before = await metrics();
  const ctl = new AbortController();
  const req = fetch(BASE + '/v1/chat/completions', { method: 'POST', signal: ctl.signal,
    headers: { 'Content-Type': 'application/json', ...auth },
    body: JSON.stringify({ model: MODEL, messages: user('long answer please'), max_tokens: 100000,
      ignore_eos: true, temperature: 1 }) });
  // Abort once the engine is generating it.
  await until((m) => m.axserve_requests_running >= 1);
  ctl.abort();
  await assert.rejects(req);
  const after = await until((m) =>
    m['axserve_requests_finished_total{reason="cancel"}'] > before['axserve_requests_finished_total{reason="cancel"}'] &&
    m.axserve_requests_running === 0);
  assert.ok(after.axserve_client_disconnects_total > before.axserve_client_disconnects_total);
});
