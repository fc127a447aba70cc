// Test helpers shared by the VHD/VHDX/VDI/qcow/ISO tests: qemu-img/qemu-io fixtures and
// byte-for-byte / allocation-map comparison of our reader against qemu-img.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import type { BlockDevice, Extent } from '../../../../src/engine/block/device.js';

export function tmpDir(): string { return fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-')); }

export function qemuImg(...args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs qemu-io commands ("write -P 0x5a 0 64k") on an image. */
export function qemuIo(fmt: string, file: string, ...cmds: string[]): void {
  execFileSync('qemu-io', ['-f', fmt, ...cmds.flatMap((c) => ['-c', c]), file], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export function qemuInfo(file: string, fmt?: string): Record<string, unknown> {
  return JSON.parse(qemuImg('info', '--output=json', ...(fmt ? ['-f', fmt] : []), file)) as Record<string, unknown>;
}

/** qemu-img check exit status and output (0 = clean). */
export function qemuCheck(file: string, fmt: string): { status: number; out: string } {
  try {
    return { status: 0, out: execFileSync('qemu-img', ['check', '-f', fmt, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { status: err.status, out: `${err.stdout}${err.stderr}` };
  }
}

export function qemuCompare(a: string, fa: string, b: string, fb: string): { status: number; out: string } {
  try {
    return { status: 0, out: execFileSync('qemu-img', ['compare', '-f', fa, '-F', fb, a, b], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { status: err.status, out: `${err.stdout}${err.stderr}` };
  }
}

/** Every byte our device reads equals qemu-img convert -O raw of the same image (checked in 8 MiB chunks). */
export async function assertSameAsQemu(dev: BlockDevice, file: string, fmt: string, dir: string): Promise<void> {
  const rawPath = path.join(dir, `ref-${path.basename(file)}.raw`);
  qemuImg('convert', '-f', fmt, '-O', 'raw', file, rawPath);
  const size = fs.statSync(rawPath).size;
  assert.equal(dev.virtualSize, size, `virtual size of ${file}`);
  const fd = fs.openSync(rawPath, 'r');
  try {
    const chunk = 8 << 20;
    const ours = Buffer.alloc(chunk);
    const ref = Buffer.alloc(chunk);
    // Odd-sized, unaligned reads too: first an unaligned window, then the whole disk.
    if (size > 12345) {
      const n = Math.min(size - 777, 3 * 1024 * 1024 + 5);
      const a = Buffer.alloc(n);
      await dev.read(a, 777);
      const b = Buffer.alloc(n);
      fs.readSync(fd, b, 0, n, 777);
      assert.ok(a.equals(b), `unaligned read at 777 differs in ${file}`);
    }
    for (let off = 0; off < size; off += chunk) {
      const n = Math.min(chunk, size - off);
      await dev.read(ours.subarray(0, n), off);
      fs.readSync(fd, ref, 0, n, off);
      if (!ours.subarray(0, n).equals(ref.subarray(0, n))) {
        let i = 0;
        while (ours[i] === ref[i]) i++;
        assert.fail(`${file}: byte at guest offset ${off + i} differs from qemu-img convert (ours ${ours[i]}, qemu ${ref[i]})`);
      }
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(rawPath);
  }
}

type MapEntry = { start: number; length: number; data: boolean; zero: boolean; offset?: number };

function mergeRanges(r: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [s, e] of r) {
    const last = out[out.length - 1];
    if (last && last[1] === s) last[1] = e;
    else if (e > s) out.push([s, e]);
  }
  return out;
}

export async function ourExtents(dev: BlockDevice): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const e of dev.extents(0, dev.virtualSize)) out.push(e);
  return out;
}

/** Our extents cover the disk exactly, and their data ranges equal qemu-img map's (top layer only when `depth0`). */
export async function assertMapMatchesQemu(dev: BlockDevice, file: string, fmt: string, opts: { subset?: boolean } = {}): Promise<void> {
  const ext = await ourExtents(dev);
  let pos = 0;
  for (const e of ext) {
    assert.equal(e.offset, pos, 'extents must be contiguous');
    assert.ok(e.length > 0);
    pos += e.length;
  }
  assert.equal(pos, dev.virtualSize, 'extents must cover the disk');
  const map = JSON.parse(qemuImg('map', '--output=json', '-f', fmt, file)) as Array<MapEntry & { depth: number }>;
  const qemuData = mergeRanges(map.filter((m) => m.data && m.depth === 0).map((m) => [m.start, m.start + m.length]));
  const ourData = mergeRanges(ext.filter((e) => e.kind === 'data').map((e) => [e.offset, e.offset + e.length]));
  if (opts.subset) {
    for (const [s, e] of ourData) assert.ok(qemuData.some(([a, b]) => a <= s && e <= b), `our data ${s}-${e} is not data for qemu`);
  } else {
    assert.deepEqual(ourData, qemuData, `data ranges of ${file} vs qemu-img map`);
  }
  // Where both give a host offset for data, they agree.
  for (const m of map) {
    if (!m.data || m.offset === undefined || m.depth !== 0) continue;
    const e = ext.find((x) => x.kind === 'data' && x.offset <= m.start && m.start < x.offset + x.length);
    if (e?.hostOffset !== undefined) assert.equal(e.hostOffset + (m.start - e.offset), m.offset, `host offset at guest ${m.start}`);
  }
}

export function writeRawWithPattern(file: string, size: number, writes: Array<[number, number, number]>): void {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  for (const [off, len, pat] of writes) fs.writeSync(fd, Buffer.alloc(len, pat), 0, len, off);
  fs.closeSync(fd);
}
