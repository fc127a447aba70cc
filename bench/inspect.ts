// Inspector speed (not a timed test):
//   node --import tsx bench/inspect.ts [--gib N]
// 1. StreamInspector.push throughput: N GiB (default 1) in 1 MiB, 64 KiB and 16 KiB
//    chunks, for a qcow2 head and a raw head; finish() timed apart.
// 2. inspectFile on 4 GiB images of every format (sparse files made by qemu-img, some
//    with data written at the start, middle and end): milliseconds per call, and a
//    whole `imgport inspect` process for comparison with `qemu-img info`.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StreamInspector, inspectFile } from '../src/engine/inspect/index.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const i = process.argv.indexOf('--gib');
const gib = i >= 0 ? Number(process.argv[i + 1]) : 1;
const root = path.resolve(import.meta.dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-bench-'));

function streamRate(head: Buffer, label: string, chunkSize = MiB): void {
  const chunk = Buffer.alloc(chunkSize, 0x11);
  const first = Buffer.alloc(Math.max(chunkSize, head.length));
  head.copy(first);
  const n = Math.ceil((gib * GiB) / chunkSize);
  // Median of 5 runs of push() alone; finish() (the verdict, once per upload) timed apart.
  const pushes: number[] = [];
  const finishes: number[] = [];
  let v;
  for (let rep = 0; rep < 5; rep++) {
    let t = process.hrtime.bigint();
    const s = new StreamInspector();
    for (let k = 0; k < n; k++) s.push(k === 0 ? first : chunk);
    pushes.push(Number(process.hrtime.bigint() - t));
    t = process.hrtime.bigint();
    v = s.finish();
    finishes.push(Number(process.hrtime.bigint() - t));
  }
  pushes.sort((a, b) => a - b);
  finishes.sort((a, b) => a - b);
  const ns = pushes[2]!;
  const mbps = (n * chunkSize) / 1e6 / (ns / 1e9);
  console.log(`push ${label.padEnd(6)} ${gib} GiB in ${chunkSize / 1024} KiB chunks: ${(ns / 1e6).toFixed(1)} ms (median of 5), ${mbps.toFixed(0)} MB/s, ` +
    `${(ns / n / 1000).toFixed(2)} µs per chunk: a 1 GB/s upload spends ${(100 * (ns / 1e9) / (n * chunkSize / 1e9)).toFixed(3)} % of its time in push; ` +
    `finish ${(finishes[2]! / 1e6).toFixed(2)} ms -> ${v!.format}`);
}

try {
  const q = (...a: string[]) => execFileSync('qemu-img', a, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  q('create', '-f', 'qcow2', 'h.qcow2', '1G');
  streamRate(fs.readFileSync(path.join(dir, 'h.qcow2')), 'qcow2');
  streamRate(Buffer.alloc(0), 'raw');
  streamRate(fs.readFileSync(path.join(dir, 'h.qcow2')), 'qcow2', 64 * 1024);
  streamRate(Buffer.alloc(0), 'raw', 16 * 1024);

  const images: Array<[string, string, string[]]> = [
    ['raw', '4g.raw', ['create', '-f', 'raw', '4g.raw', '4G']],
    ['qcow2', '4g.qcow2', ['create', '-f', 'qcow2', '4g.qcow2', '4G']],
    ['qcow', '4g.qcow', ['create', '-f', 'qcow', '4g.qcow', '4G']],
    ['vmdk', '4g.vmdk', ['create', '-f', 'vmdk', '4g.vmdk', '4G']],
    ['vpc', '4g.vhd', ['create', '-f', 'vpc', '4g.vhd', '4G']],
    ['vpc', '4g-fixed.vhd', ['create', '-f', 'vpc', '-o', 'subformat=fixed', '4g-fixed.vhd', '4G']],
    ['vhdx', '4g.vhdx', ['create', '-f', 'vhdx', '4g.vhdx', '4G']],
    ['vdi', '4g.vdi', ['create', '-f', 'vdi', '4g.vdi', '4G']],
  ];
  for (const [fmt, file, args] of images) {
    q(...args);
    if (fmt !== 'raw') execFileSync('qemu-io', ['-f', fmt, '-c', 'write -P 1 0 4M', '-c', 'write -P 2 2G 4M', '-c', 'write -P 3 4092M 4M', file], { cwd: dir, stdio: 'ignore' });
  }
  console.log('\ninspectFile on 4 GiB images (median of 9 calls, warm page cache):');
  for (const [, file] of images) {
    const p = path.join(dir, file);
    const times: number[] = [];
    let v;
    for (let k = 0; k < 9; k++) {
      const t = process.hrtime.bigint();
      v = await inspectFile(p);
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    times.sort((a, b) => a - b);
    console.log(`  ${file.padEnd(14)} ${times[4]!.toFixed(2).padStart(7)} ms  ${v!.format}${v!.subformat ? '/' + v!.subformat : ''} ${v!.virtualSize} safe=${v!.safe}`);
  }
  console.log('\nwhole process (node + tsx start-up included), one run each:');
  for (const file of ['4g.qcow2', '4g.vhdx']) {
    const p = path.join(dir, file);
    let t = Date.now();
    spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'inspect', p], { cwd: root });
    const ours = Date.now() - t;
    t = Date.now();
    spawnSync(process.execPath, ['-e', '0']);
    const bare = Date.now() - t;
    t = Date.now();
    spawnSync('qemu-img', ['info', p]);
    const qemu = Date.now() - t;
    console.log(`  ${file.padEnd(14)} imgport inspect ${ours} ms (bare node start ${bare} ms), qemu-img info ${qemu} ms`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
