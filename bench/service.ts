// imgport image service vs OpenStack Glance, side by side over loopback:
//   upload 1 GiB (md5 + sha512), download it, create 10,000 images and page through a
//   filtered + sorted listing 100 at a time (SQLite and PostgreSQL), create/GET p99,
//   GET throughput at concurrency 8, server RSS during 16 concurrent 1 GiB uploads.
// Glance is the anchor from ../shared/tools/glance-anchor.sh (started when missing);
// without it only imgport's figures are printed.
//   npm run bench:service [-- --quick]    (BENCH_IMAGES, BENCH_GLANCE_IMAGES, BENCH_UPLOAD_MIB)
import http from 'node:http';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync, symlinkSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.argv.includes('--quick');
const MIB = 1024 * 1024;
const UPLOAD_MIB = Number(process.env.BENCH_UPLOAD_MIB ?? (QUICK ? 256 : 1024));
const N_IMAGES = Number(process.env.BENCH_IMAGES ?? (QUICK ? 2000 : 10000));
const N_GLANCE_IMAGES = Number(process.env.BENCH_GLANCE_IMAGES ?? (QUICK ? 500 : 2000));
const CONCURRENT_UPLOADS = Number(process.env.BENCH_CONCURRENT_UPLOADS ?? (QUICK ? 4 : 16));
const GLANCE_URL = process.env.GLANCE_URL ?? 'http://127.0.0.1:9393';
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

interface Resp { status: number; body: string }
function call(base: string, method: string, p: string, body?: object | Buffer, headers: Record<string, string> = {}): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (payload && !h['content-type']) h['content-type'] = 'application/json';
    const r = http.request(base + p, { method, agent, headers: h }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
    });
    r.on('error', reject);
    r.end(payload);
  });
}

async function ok(base: string, method: string, p: string, body?: object, want = [200, 201, 204]): Promise<any> {
  const r = await call(base, method, p, body);
  if (!want.includes(r.status)) throw new Error(`${method} ${p}: ${r.status} ${r.body.slice(0, 300)}`);
  return r.body ? JSON.parse(r.body) : null;
}

/** Streams `mib` MiB of pseudo-random data as one PUT; resolves with seconds taken. */
function upload(base: string, id: string, mib: number, block: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const r = http.request(`${base}/v2/images/${id}/file`, {
      method: 'PUT', agent: false,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(mib * MIB) },
    }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 204 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`upload: ${res.statusCode}`))));
    });
    r.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < mib) {
        sent++;
        if (!r.write(block)) { r.once('drain', pump); return; }
      }
      r.end();
    };
    pump();
  });
}

function download(base: string, id: string): Promise<{ secs: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http.get(`${base}/v2/images/${id}/file`, { agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; });
      res.on('end', () => resolve({ secs: (performance.now() - t0) / 1000, bytes }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const fmt = (n: number | undefined, d = 1) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(d));

async function freePort(): Promise<number> {
  return new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
}

let built: Promise<string> | null = null;
/** Compiles src/ into a temporary directory that resolves this repo's node_modules. */
function buildOnce(): Promise<string> {
  built ??= (async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'imgport-bench-build-'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', version: '0.0.0' }));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    console.error('compiling…');
    spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', ROOT, '--outDir', path.join(dir, 'dist'), '--declaration', 'false', '--sourceMap', 'false'], { stdio: 'ignore' });
    if (!existsSync(path.join(dir, 'dist/cli/main.js'))) throw new Error('build failed');
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'dist');
  })();
  return built;
}

interface Server { name: string; base: string; pid: number | null; proc?: ChildProcess; stop(): Promise<void> }

async function startImgport(driver: 'sqlite' | 'postgres'): Promise<Server> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'imgport-bench-'));
  const port = await freePort();
  const schema = `imgport_bench_${randomBytes(4).toString('hex')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, IMGPORT_PORT: String(port), IMGPORT_DATA_DIR: dir, IMGPORT_LOG_LEVEL: 'error', IMGPORT_DB_DRIVER: driver, IMGPORT_DB_SCHEMA: schema, IMGPORT_STORE_FSYNC: '1' };
  if (driver === 'postgres') env.IMGPORT_DB_URL = PG_URL;
  // Compiled JS (no loader in the measured process): a private, fresh build of this tree.
  const args = [path.join(await buildOnce(), 'cli/main.js'), 'serve'];
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (await call(base, 'GET', '/versions').then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: `imgport/${driver}`, base, pid: proc.pid ?? null, proc,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
      if (driver === 'postgres') { const c = new pg.Client({ connectionString: PG_URL }); await c.connect(); await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`); await c.end(); }
    },
  };
}

async function startGlance(): Promise<Server | null> {
  const up = () => call(GLANCE_URL, 'GET', '/versions').then(() => true, () => false);
  if (!(await up())) {
    const script = path.resolve(ROOT, '../shared/tools/glance-anchor.sh');
    if (!existsSync(script) || process.env.BENCH_NO_GLANCE) return null;
    console.error('starting the Glance anchor (this takes a while)…');
    const r = spawnSync('bash', [script], { encoding: 'utf8', env: { ...process.env, GLANCE_PORT: new URL(GLANCE_URL).port } });
    if (r.status !== 0 || !(await up())) { console.error('Glance anchor unavailable:', r.stdout, r.stderr); return null; }
  }
  // glance-api forks: measure the worker that serves (the newest glance-api process).
  const pids = spawnSync('pgrep', ['-f', 'glance-api'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
  return { name: 'glance', base: GLANCE_URL, pid: pids.length ? Math.max(...pids) : null, async stop() {} };
}

function rssOf(pid: number | null): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch { return NaN; }
}

async function benchUpload(s: Server, block: Buffer): Promise<{ up: number; down: number; verified: boolean }> {
  const img = await ok(s.base, 'POST', '/v2/images', { name: 'bench-upload', disk_format: 'raw', container_format: 'bare' });
  const secs = await upload(s.base, img.id, UPLOAD_MIB, block);
  const after = await ok(s.base, 'GET', `/v2/images/${img.id}`);
  let h = createHash('md5');
  for (let i = 0; i < UPLOAD_MIB; i++) h.update(block);
  const verified = after.checksum === h.digest('hex') && after.os_hash_algo === 'sha512' && !!after.os_hash_value;
  const d = await download(s.base, img.id);
  await ok(s.base, 'DELETE', `/v2/images/${img.id}`);
  return { up: UPLOAD_MIB / secs, down: d.bytes / MIB / d.secs, verified };
}

async function benchCreateGet(s: Server, n: number): Promise<{ createP99: number; getP99: number; ids: string[] }> {
  const c: number[] = [], g: number[] = [], ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const img = await ok(s.base, 'POST', '/v2/images', { name: `cg-${i}`, disk_format: 'raw', container_format: 'bare', bench: 'cg' });
    c.push(performance.now() - t0);
    ids.push(img.id);
    const t1 = performance.now();
    await ok(s.base, 'GET', `/v2/images/${img.id}`);
    g.push(performance.now() - t1);
  }
  return { createP99: pct(c, 99), getP99: pct(g, 99), ids };
}

async function benchGetThroughput(s: Server, ids: string[], secs = 5): Promise<number> {
  let n = 0;
  const end = performance.now() + secs * 1000;
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    let i = w;
    while (performance.now() < end) { await ok(s.base, 'GET', `/v2/images/${ids[i++ % ids.length]}`); n++; }
  }));
  return n / secs;
}

async function fill(s: Server, n: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < n) {
      const i = next++;
      await ok(s.base, 'POST', '/v2/images', { name: `img-${String(i).padStart(6, '0')}`, disk_format: i % 3 ? 'qcow2' : 'raw', container_format: 'bare', series: i % 2 ? 'odd' : 'even', tags: [`t${i % 10}`] });
    }
  }));
}

async function benchList(s: Server): Promise<{ p99: number; pages: number }> {
  const times: number[] = [];
  let url: string | undefined = '/v2/images?series=even&disk_format=qcow2&sort=name:asc&limit=100';
  while (url) {
    const t0 = performance.now();
    const body: any = await ok(s.base, 'GET', url);
    times.push(performance.now() - t0);
    url = body.next;
  }
  return { p99: pct(times, 99), pages: times.length };
}

async function benchRss(s: Server, block: Buffer, mib: number): Promise<number> {
  const ids: string[] = [];
  for (let i = 0; i < CONCURRENT_UPLOADS; i++) ids.push((await ok(s.base, 'POST', '/v2/images', { name: `rss-${i}`, disk_format: 'raw', container_format: 'bare' })).id);
  let peak = rssOf(s.pid);
  const timer = setInterval(() => { const r = rssOf(s.pid); if (r > peak || Number.isNaN(peak)) peak = r; }, 100);
  try {
    await Promise.all(ids.map((id) => upload(s.base, id, mib, block)));
  } finally { clearInterval(timer); }
  for (const id of ids) await ok(s.base, 'DELETE', `/v2/images/${id}`);
  return peak;
}

async function main(): Promise<void> {
  const block = randomBytes(MIB);
  const rows: [string, string, string, string, string][] = [];
  const add = (what: string, a: number | undefined, b: number | undefined, unit: string, target: string, higherBetter = true) => {
    const ratio = a !== undefined && b !== undefined && b > 0 ? (higherBetter ? a / b : b / a) : undefined;
    rows.push([what, `${fmt(a)} ${unit}`, b === undefined ? '—' : `${fmt(b)} ${unit}`, ratio === undefined ? '—' : `${fmt(ratio, 2)}×`, target]);
  };

  const glance = await startGlance();
  const lite = await startImgport('sqlite');
  const pgs = await startImgport('postgres');
  try {
    console.error(`upload/download ${UPLOAD_MIB} MiB…`);
    const iu = await benchUpload(lite, block);
    const gu = glance ? await benchUpload(glance, block) : undefined;
    if (!iu.verified) console.error('WARNING: imgport checksum mismatch');
    add(`upload ${UPLOAD_MIB} MiB (md5+sha512)`, iu.up, gu?.up, 'MiB/s', '≥ 2× Glance');
    add(`download ${UPLOAD_MIB} MiB`, iu.down, gu?.down, 'MiB/s', '≥ Glance');

    console.error('create/GET latency…');
    const ic = await benchCreateGet(lite, QUICK ? 300 : 1000);
    const gc = glance ? await benchCreateGet(glance, QUICK ? 100 : 300) : undefined;
    add('create p99', ic.createP99, gc?.createP99, 'ms', '< 5 ms', false);
    add('GET p99', ic.getP99, gc?.getP99, 'ms', '< 5 ms', false);
    const it = await benchGetThroughput(lite, ic.ids);
    const gt = glance && gc ? await benchGetThroughput(glance, gc.ids) : undefined;
    add('GET throughput, concurrency 8', it, gt, 'req/s', '≥ 4× Glance');

    for (const s of [lite, pgs]) {
      console.error(`${s.name}: creating ${N_IMAGES} images…`);
      const t0 = performance.now();
      await fill(s, N_IMAGES);
      const rate = N_IMAGES / ((performance.now() - t0) / 1000);
      const l = await benchList(s);
      let gl: { p99: number } | undefined;
      if (glance && s === lite) {
        console.error(`glance: creating ${N_GLANCE_IMAGES} images…`);
        await fill(glance, N_GLANCE_IMAGES);
        gl = await benchList(glance);
      }
      add(`${s.name}: create ${N_IMAGES} (8 clients)`, rate, undefined, 'img/s', '');
      add(`${s.name}: list page p99 (filter+sort, 100/page, ${l.pages} pages)${gl ? ` [Glance: ${N_GLANCE_IMAGES} images]` : ''}`, l.p99, gl?.p99, 'ms', '< 20 ms', false);
    }

    console.error(`RSS during ${CONCURRENT_UPLOADS} concurrent ${UPLOAD_MIB} MiB uploads…`);
    const ir = await benchRss(lite, block, UPLOAD_MIB);
    add(`server RSS peak, ${CONCURRENT_UPLOADS} × ${UPLOAD_MIB} MiB uploads`, ir, undefined, 'MiB', '< 200 MiB', false);
  } finally {
    await lite.stop();
    await pgs.stop();
    agent.destroy();
  }

  const head: [string, string, string, string, string] = ['measure', 'imgport', 'glance', 'ratio', 'target'];
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  if (!glance) console.log('\n(Glance anchor not available: imgport figures only)');
}

main().catch((e) => { console.error(e); process.exit(1); });
