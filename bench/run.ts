// Side-by-side benchmark: imgport (the built CLI) vs qemu-img on a realistic sparse disk.
//   npm run bench                       4 GiB disk, 3 runs per case
//   npm run bench -- --size 1G --runs 5 --cases raw,info
// Adding a case is one entry in CASES below.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1 << 20;

// ---------------------------------------------------------------------------
// Arguments

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()));
}
const SIZE = parseSize(arg('size', '4G'));
const RUNS = Math.max(1, Number(arg('runs', '3')));
const FILTER = arg('cases', '').split(',').filter(Boolean);
const KEEP = process.argv.includes('--keep');

// ---------------------------------------------------------------------------
// The cases. `src` names a fixture; `out` is the output file's extension (none for queries).

interface Ctx { raw: string; qcow2: string; qcow2c: string; out: string }
interface Case {
  name: string;
  kind: 'convert' | 'query';
  /** Target for imgport/qemu-img wall-time ratio. */
  ratio: number;
  /** Absolute wall-time target in ms (queries). */
  maxMs?: number;
  /** Arguments after the program name; the same for both tools (imgport speaks qemu-img's flags). */
  args(c: Ctx): string[];
  /** Output file extension (convert cases); qcow2 outputs are also run through qemu-img check. */
  ext?: string;
  /** The source to compare the output with, for the correctness check (convert cases). */
  source?(c: Ctx): string;
}

const CASES: Case[] = [
  { name: 'raw→qcow2', kind: 'convert', ratio: 1.0, ext: 'qcow2', args: (c) => ['convert', '-f', 'raw', '-O', 'qcow2', c.raw, c.out], source: (c) => c.raw },
  { name: 'qcow2→raw', kind: 'convert', ratio: 1.0, ext: 'raw', args: (c) => ['convert', '-f', 'qcow2', '-O', 'raw', c.qcow2, c.out], source: (c) => c.qcow2 },
  { name: 'qcow2→qcow2', kind: 'convert', ratio: 1.0, ext: 'qcow2', args: (c) => ['convert', '-f', 'qcow2', '-O', 'qcow2', c.qcow2, c.out], source: (c) => c.qcow2 },
  { name: 'raw→qcow2 -c', kind: 'convert', ratio: 0.6, ext: 'qcow2', args: (c) => ['convert', '-c', '-f', 'raw', '-O', 'qcow2', c.raw, c.out], source: (c) => c.raw },
  { name: 'qcow2(-c)→raw', kind: 'convert', ratio: 1.0, ext: 'raw', args: (c) => ['convert', '-f', 'qcow2', '-O', 'raw', c.qcow2c, c.out], source: (c) => c.qcow2c },
  { name: 'raw→vpc', kind: 'convert', ratio: 1.0, ext: 'vhd', args: (c) => ['convert', '-f', 'raw', '-O', 'vpc', c.raw, c.out], source: (c) => c.raw },
  { name: 'raw→vhdx', kind: 'convert', ratio: 1.0, ext: 'vhdx', args: (c) => ['convert', '-f', 'raw', '-O', 'vhdx', c.raw, c.out], source: (c) => c.raw },
  { name: 'raw→vdi', kind: 'convert', ratio: 1.0, ext: 'vdi', args: (c) => ['convert', '-f', 'raw', '-O', 'vdi', c.raw, c.out], source: (c) => c.raw },
  { name: 'info qcow2', kind: 'query', ratio: 1.0, maxMs: 150, args: (c) => ['info', c.qcow2] },
  { name: 'map qcow2', kind: 'query', ratio: 1.0, maxMs: 150, args: (c) => ['map', '--output', 'json', c.qcow2] },
  { name: 'check qcow2', kind: 'query', ratio: 1.0, maxMs: 150, args: (c) => ['check', c.qcow2] },
];

const PEAK_TARGET_MIB = 150;

// ---------------------------------------------------------------------------
// The fixture: a disk that looks like a real one.

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ('the of and to in is was for on that with as by at from this it be are or an have not which '
  + 'kernel module config user system file error warning info debug service network start stop mount disk boot '
  + 'package install version update library daemon process thread memory cache socket timeout request response').split(' ');

/** 1 MiB of log- or source-like text. */
function textBlock(r: () => number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < MiB) {
    const words = 4 + Math.floor(r() * 12);
    let line = `[${(r() * 100000).toFixed(6)}] `;
    for (let i = 0; i < words; i++) line += WORDS[Math.floor(r() * WORDS.length)] + (r() < 0.1 ? `=${Math.floor(r() * 65536)}` : '') + ' ';
    line += '\n';
    parts.push(line);
    n += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, MiB);
}

/** Incompressible bytes from AES-CTR over zeros: fast and reproducible from the seed. */
function randomStream(seed: number): (n: number) => Buffer {
  const key = crypto.createHash('sha256').update(`imgport-bench-${seed}`).digest().subarray(0, 16);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

function mbr(size: number): Buffer {
  const b = Buffer.alloc(512);
  const sectors = Math.min(0xffffffff, Math.floor(size / 512) - 2048);
  const e = 446;
  b[e] = 0x80;               // bootable
  b[e + 4] = 0x83;           // Linux
  b.writeUInt32LE(2048, e + 8);
  b.writeUInt32LE(sectors, e + 12);
  b.writeUInt16LE(0xaa55, 510);
  return b;
}

function makeDisk(file: string, size: number): { random: number; text: number; zero: number } {
  const r = rng(20261123);
  const rand = randomStream(1);
  const texts = Array.from({ length: 8 }, () => textBlock(r));
  // Plan: runs of 1–64 MiB until each kind has its share, in shuffled order, then the
  // remaining space split into holes between them at random.
  const shares = { random: 0.25, text: 0.10, zero: 0.03 } as const;
  const runs: Array<{ kind: keyof typeof shares; len: number }> = [];
  const got = { random: 0, text: 0, zero: 0 };
  for (const kind of Object.keys(shares) as Array<keyof typeof shares>) {
    const want = Math.floor((shares[kind] * size) / MiB) * MiB;
    while (got[kind] < want) {
      const len = Math.min((1 + Math.floor(r() * 64)) * MiB, want - got[kind]);
      runs.push({ kind, len });
      got[kind] += len;
    }
  }
  for (let i = runs.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [runs[i], runs[j]] = [runs[j]!, runs[i]!]; }
  const data = runs.reduce((n, x) => n + x.len, 0);
  const holeMiB = Math.floor((size - MiB - data) / MiB);
  const weights = runs.map(() => r());
  const wsum = weights.reduce((a, b) => a + b, 0);
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  fs.writeSync(fd, mbr(size), 0, 512, 0);
  let pos = MiB;
  for (let i = 0; i < runs.length; i++) {
    pos += Math.floor((weights[i]! / wsum) * holeMiB) * MiB;
    const { kind, len } = runs[i]!;
    for (let off = 0; off < len; off += MiB) {
      const n = Math.min(MiB, len - off);
      const buf = kind === 'random' ? rand(n) : kind === 'text' ? texts[Math.floor(r() * texts.length)]!.subarray(0, n) : Buffer.alloc(n);
      fs.writeSync(fd, buf, 0, n, pos + off);
    }
    pos += len;
  }
  fs.closeSync(fd);
  return got;
}

// ---------------------------------------------------------------------------
// Running and measuring

interface Sample { ms: number; peakKiB: number | null; status: number; stderr: string }

const hasGnuTime = fs.existsSync('/usr/bin/time');

/** Runs a command; wall time from spawn to exit, peak RSS from GNU time or /proc polling. */
function run(cmd: string, args: string[]): Promise<Sample> {
  return new Promise((resolve) => {
    const timeFile = path.join(os.tmpdir(), `imgport-bench-time-${process.pid}`);
    const [exe, argv] = hasGnuTime ? ['/usr/bin/time', ['-f', '%M', '-o', timeFile, cmd, ...args]] : [cmd, args];
    const t0 = performance.now();
    const child = spawn(exe, argv, { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    let polled = 0;
    const poll = hasGnuTime ? null : setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) polled = Math.max(polled, Number(m[1]));
      } catch { /* exited */ }
    }, 10);
    child.on('close', (status) => {
      const ms = performance.now() - t0;
      if (poll) clearInterval(poll);
      let peakKiB: number | null = polled || null;
      if (hasGnuTime) {
        try { peakKiB = Number(fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()); fs.rmSync(timeFile); } catch { peakKiB = null; }
      }
      resolve({ ms, peakKiB, status: status ?? 1, stderr });
    });
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

function fmtMs(ms: number): string { return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`; }

async function main(): Promise<void> {
  if (spawnSync('qemu-img', ['--version']).status !== 0) {
    console.error('bench: qemu-img is needed (apt-get install qemu-utils)');
    process.exit(1);
  }
  console.log('building the CLI (npx tsc -p .)...');
  const b = spawnSync('npx', ['tsc', '-p', '.'], { cwd: ROOT, encoding: 'utf8' });
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) {
    console.error(`bench: build failed:\n${b.stdout}${b.stderr}`);
    process.exit(1);
  }
  if (b.status !== 0) console.log('  (tsc reported type errors, in files outside the benchmarked paths perhaps; the emitted JS is used)');
  const native = fs.existsSync(path.join(ROOT, 'build/Release/imgport_native.node'));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-bench-'));
  try {
    const raw = path.join(dir, 'disk.raw');
    console.log(`generating a ${(SIZE / 2 ** 30).toFixed(2)} GiB sparse disk in ${dir}...`);
    const mix = makeDisk(raw, SIZE);
    console.log(`  random ${(mix.random / MiB).toFixed(0)} MiB, text ${(mix.text / MiB).toFixed(0)} MiB, explicit zeros ${(mix.zero / MiB).toFixed(0)} MiB, the rest holes`);
    const ctx: Ctx = { raw, qcow2: path.join(dir, 'disk.qcow2'), qcow2c: path.join(dir, 'disk-c.qcow2'), out: '' };
    console.log('preparing the qcow2 inputs with qemu-img (plain and compressed)...');
    for (const [extra, out] of [[[], ctx.qcow2], [['-c'], ctx.qcow2c]] as const) {
      const r = spawnSync('qemu-img', ['convert', ...extra, '-f', 'raw', '-O', 'qcow2', raw, out], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    }
    // A filter naming a case exactly picks that case only; otherwise it matches by substring.
    const cases = CASES.filter((c) => FILTER.length === 0 || FILTER.some((f) => (CASES.some((x) => x.name === f) ? c.name === f : c.name.includes(f))));
    const rows: string[][] = [];
    let failed = false;
    for (const c of cases) {
      const times: Record<'imgport' | 'qemu', number[]> = { imgport: [], qemu: [] };
      const peaks: Record<'imgport' | 'qemu', number[]> = { imgport: [], qemu: [] };
      let correct = '-';
      for (let i = 0; i < RUNS; i++) {
        // Alternate which tool goes first so neither always gets the warmer cache.
        const order: Array<'imgport' | 'qemu'> = i % 2 === 0 ? ['imgport', 'qemu'] : ['qemu', 'imgport'];
        for (const tool of order) {
          const out = path.join(dir, `out-${tool}.${c.ext ?? 'out'}`);
          const args = c.args({ ...ctx, out });
          const s = tool === 'imgport' ? await run(process.execPath, [path.join(ROOT, 'bin/imgport.js'), ...args]) : await run('qemu-img', args);
          // check exits 0 when clean; anything else is a failure of the run.
          if (s.status !== 0) { console.error(`${tool} ${args.join(' ')} failed (${s.status}): ${s.stderr}`); failed = true; }
          times[tool].push(s.ms);
          if (s.peakKiB) peaks[tool].push(s.peakKiB);
          if (c.kind === 'convert' && tool === 'imgport' && i === 0 && c.source) {
            const cmp = spawnSync('qemu-img', ['compare', c.source(ctx), out], { encoding: 'utf8' });
            correct = cmp.status === 0 ? 'same' : 'DIFFERS';
            if (cmp.status !== 0) failed = true;
            if (c.ext === 'qcow2') {
              const chk = spawnSync('qemu-img', ['check', out], { encoding: 'utf8' });
              if (chk.status !== 0) { correct = 'check fails'; failed = true; }
            }
          }
          fs.rmSync(out, { force: true });
        }
      }
      const mi = median(times.imgport), mq = median(times.qemu);
      const ratio = mi / mq;
      const peakI = peaks.imgport.length ? Math.max(...peaks.imgport) / 1024 : NaN;
      const peakQ = peaks.qemu.length ? Math.max(...peaks.qemu) / 1024 : NaN;
      const goals: string[] = [];
      let ok = ratio <= c.ratio;
      goals.push(`ratio ≤ ${c.ratio}`);
      if (c.maxMs !== undefined) { goals.push(`< ${c.maxMs} ms`); ok &&= mi < c.maxMs; }
      if (c.kind === 'convert') { goals.push(`peak < ${PEAK_TARGET_MIB} MiB`); ok &&= peakI < PEAK_TARGET_MIB; }
      rows.push([c.name, fmtMs(mi), fmtMs(mq), ratio.toFixed(2), isNaN(peakI) ? '?' : `${peakI.toFixed(0)} MiB`, isNaN(peakQ) ? '?' : `${peakQ.toFixed(0)} MiB`, correct, goals.join(', '), ok ? 'met' : 'MISSED']);
      console.log(`  ${c.name}: imgport ${fmtMs(mi)}, qemu-img ${fmtMs(mq)}`);
    }
    const head = ['case', 'imgport', 'qemu-img', 'ratio', 'peak imgport', 'peak qemu-img', 'output', 'target', ''];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => '| ' + r.map((x, i) => x.padEnd(widths[i]!)).join(' | ') + ' |';
    console.log('');
    console.log(`imgport vs qemu-img ${spawnSync('qemu-img', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]!.replace('qemu-img version ', '')}, ${(SIZE / 2 ** 30).toFixed(2)} GiB disk, median of ${RUNS} runs, ${os.availableParallelism()} cores, load ${os.loadavg()[0]!.toFixed(1)}, native addon ${native ? 'built' : 'missing'}`);
    console.log(line(head));
    console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
    for (const r of rows) console.log(line(r));
    if (failed) { console.log('\nsome runs failed or produced wrong output (see above)'); process.exitCode = 1; }
  } finally {
    if (KEEP) console.log(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
