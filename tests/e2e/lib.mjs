// lib.mjs - helpers shared by the end-to-end tests: where the server is
// (set by tests/suites/server-e2e.sh), the official openai client, raw
// HTTP with an SSE parser, and a /metrics reader.
import OpenAI from '../oracle/node_modules/openai/index.mjs';

export const BASE = process.env.AXSERVE_URL;
export const KEY = process.env.AXSERVE_API_KEY;
export const MODEL = process.env.AXSERVE_MODEL_ID;
export const N_CTX = Number(process.env.AXSERVE_N_CTX || 1024);
export const QUEUE = Number(process.env.AXSERVE_QUEUE || 8);
export const SHORT = process.env.AXSERVE_SHORT === '1';
if (!BASE || !KEY || !MODEL) throw new Error('run through tests/suites/server-e2e.sh');

export const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY, maxRetries: 0 });
export const auth = { Authorization: `Bearer ${KEY}` };

export async function post(path, body, headers = auth) {
  const r = await fetch(BASE + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

export async function get(path, headers = auth) {
  const r = await fetch(BASE + path, { headers });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

// Raw SSE: returns every `data:` payload in order (strings), checking the
// framing (each event is one "data: ..." line followed by a blank line).
export async function sse(path, body, { signal, onEvent } = {}) {
  const r = await fetch(BASE + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...auth },
    body: JSON.stringify(body),
    signal,
  });
  if (r.status !== 200) return { status: r.status, events: [], text: await r.text() };
  const events = [];
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body) {
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(':')) continue; // keep-alive comment
      if (!block.startsWith('data: ') || block.includes('\n'))
        throw new Error(`bad SSE block: ${JSON.stringify(block)}`);
      const data = block.slice(6);
      events.push(data);
      if (onEvent) onEvent(data, events.length);
    }
  }
  if (buf.length) throw new Error(`trailing bytes after the last event: ${JSON.stringify(buf)}`);
  return { status: r.status, headers: r.headers, events };
}

export async function metrics() {
  const r = await get('/metrics');
  if (r.status !== 200) throw new Error(`/metrics: ${r.status}`);
  const m = {};
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    m[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return m;
}

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// Polls /metrics until pred(m) holds, at most `tries` times. A bound on
// attempts, not a timing assertion: it fails only if the state never comes.
export async function until(pred, tries = 400) {
  let m;
  for (let i = 0; i < tries; i++) {
    m = await metrics();
    if (pred(m)) return m;
    await sleep(50);
  }
  throw new Error(`metrics never reached the expected state: ${JSON.stringify(m)}`);
}

export const user = (text) => [{ role: 'user', content: text }];

export function assertError(assert, r, status, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, `no error object: ${r.text}`);
  const e = r.json.error;
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  assert.equal(typeof e.type, 'string');
  assert.ok('param' in e && 'code' in e, 'error must have param and code');
  if (param !== undefined) assert.equal(e.param, param);
  return e;
}
