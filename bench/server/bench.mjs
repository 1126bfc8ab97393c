// bench.mjs - the measurements behind `make bench-server` (see run.sh).
import { execFileSync } from 'node:child_process';

const URL_ = process.env.BENCH_URL;
const MODEL = process.env.BENCH_MODEL;
const THREADS = process.env.BENCH_THREADS;
const TOKENS = Number(process.env.BENCH_TOKENS);
const BIN = process.env.BENCH_BIN;
const PROMPT = 'The quick brown fox jumps over the lazy dog. '.repeat(4);
const REPS = 3;

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const row = (name, value) => console.log(`${name.padEnd(44)} ${String(value).padStart(12)}`);

// Streams one request; returns the time of the first token-bearing chunk
// and of the last chunk (ms since the request was sent) and the usage.
async function stream(path, body) {
  const t0 = performance.now();
  const r = await fetch(URL_ + path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }) });
  if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  let first = null, last = null, usage = null, buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body) {
    const now = performance.now() - t0;
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const c = JSON.parse(ev.slice(6));
      if (c.usage) { usage = c.usage; continue; }
      const ch = c.choices[0];
      const tok = ch.text !== undefined ? ch.text.length > 0 || ch.finish_reason
        : ch.delta.content || ch.delta.reasoning_content || ch.finish_reason;
      if (tok && first === null) first = now;
      if (ch.finish_reason) last = now;
    }
  }
  return { first, last, usage };
}

// Both sides get the same token ids (generate takes ids).
async function promptIds() {
  const r = await fetch(URL_ + '/tokenize', { method: 'POST', body: JSON.stringify({ content: PROMPT }) });
  return (await r.json()).tokens;
}

// The server's own per-request decode rate (time between engine events on
// the HTTP thread), summed in /metrics; separates engine from HTTP cost.
async function serverRate() {
  const t = await (await fetch(URL_ + '/metrics')).text();
  const get = (k) => Number((t.match(new RegExp(`^${k} (\\S+)$`, 'm')) || [])[1]);
  return { sum: get('axserve_decode_tokens_per_second_sum'), n: get('axserve_decode_tokens_per_second_count') };
}

async function decodeHttp(ids) {
  const rates = [];
  for (let i = 0; i < REPS; i++) {
    const s = await stream('/v1/completions', { prompt: ids, max_tokens: TOKENS, temperature: 0,
      ignore_eos: true });
    if (s.usage.completion_tokens !== TOKENS) throw new Error(`got ${s.usage.completion_tokens} tokens`);
    rates.push((TOKENS - 1) / ((s.last - s.first) / 1000));
  }
  return median(rates);
}

function decodeCli(ids) {
  const rates = [];
  for (let i = 0; i < REPS; i++) {
    const out = execFileSync(BIN, ['generate', '-m', MODEL, '--ids', ids.join(','), '-n', String(TOKENS),
      '--ignore-eos', '--threads', THREADS, '--top', '1'], { encoding: 'utf8', maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'ignore'] });
    const t = JSON.parse(out).timings;
    rates.push(t.decode_tokens / (t.decode_ms / 1000));
  }
  return median(rates);
}

async function conversation(nonce) {
  const sys = 'You are a helpful assistant that answers briefly. '.repeat(3);
  const msgs = [{ role: 'system', content: sys }];
  const rows = [];
  for (let k = 1; k <= 10; k++) {
    msgs.push({ role: 'user', content: `Turn ${k}: tell me something about the number ${k * 7}, in detail please.` });
    const sent = nonce ? [{ role: 'system', content: `[${Math.random().toString(36).slice(2)}] ${sys}` }, ...msgs.slice(1)] : msgs;
    const body = { messages: sent, max_tokens: 16, temperature: 0, ignore_eos: true,
      chat_template_kwargs: { enable_thinking: false } };
    const s = await stream('/v1/chat/completions', body);
    rows.push({ ttft: s.first, prompt: s.usage.prompt_tokens, cached: s.usage.prompt_tokens_details.cached_tokens });
    // The reply text itself does not matter; a fixed one keeps both runs identical.
    msgs.push({ role: 'assistant', content: `Reply ${k}.` });
  }
  return rows;
}

console.log(`axserve bench-server: model ${MODEL}, ${THREADS} thread(s), ${TOKENS} tokens, median of ${REPS}`);
const ids = await promptIds();
const before = await serverRate();
const http = await decodeHttp(ids);
const after = await serverRate();
const cli = decodeCli(ids);
row('decode tok/s, streaming HTTP (/v1/completions)', http.toFixed(1));
row('decode tok/s, same requests seen by the server', ((after.sum - before.sum) / (after.n - before.n)).toFixed(1));
row('decode tok/s, axserve generate', cli.toFixed(1));
row('HTTP / generate', `${((http / cli) * 100).toFixed(1)} %`);
await conversation(false); // warm-up
const cached = await conversation(false);
const fresh = await conversation(true);
console.log('\nturn  prompt  cached  TTFT cache (ms)  TTFT no cache (ms)');
for (let k = 0; k < 10; k++)
  console.log(`${String(k + 1).padStart(4)}  ${String(cached[k].prompt).padStart(6)}  ${String(cached[k].cached).padStart(6)}` +
    `  ${cached[k].ttft.toFixed(1).padStart(15)}  ${fresh[k].ttft.toFixed(1).padStart(18)}` +
    `   (no-cache run reused ${fresh[k].cached})`);
console.log('');
