// Shared helpers for the qcow2 tests: fixtures made with qemu-img/qemu-io at test time.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import type { BlockDevice, Extent } from '../../../../src/engine/block/device.js';

export function hasQemu(): boolean {
  return spawnSync('qemu-img', ['--version']).status === 0 && spawnSync('qemu-io', ['--version']).status === 0;
}

export function tmpdir(): string { return fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-')); }

export function qemuImg(...args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** Runs qemu-img and returns exit status and stdout (check exits 2/3 on errors/leaks). */
export function qemuImgStatus(...args: string[]): { status: number; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, out: r.stdout + r.stderr };
}

export function qemuIo(img: string, ...cmds: string[]): void {
  execFileSync('qemu-io', ['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), img], { encoding: 'utf8' });
}

export function info(img: string): any { return JSON.parse(qemuImg('info', '--output', 'json', img)); }
export function check(img: string): any {
  const r = spawnSync('qemu-img', ['check', '--output', 'json', img], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, ...JSON.parse(r.stdout) };
}

/** Asserts every byte of `dev` equals the raw file, reading in 4 MiB pieces. */
export async function assertSameAsRaw(dev: BlockDevice, rawPath: string, chunk = 4 << 20): Promise<void> {
  const fd = fs.openSync(rawPath, 'r');
  try {
    assert.equal(fs.fstatSync(fd).size, dev.virtualSize, 'virtual size');
    const ours = new Uint8Array(chunk), theirs = Buffer.alloc(chunk);
    for (let off = 0; off < dev.virtualSize; off += chunk) {
      const n = Math.min(chunk, dev.virtualSize - off);
      await dev.read(ours.subarray(0, n), off);
      fs.readSync(fd, theirs, 0, n, off);
      if (Buffer.compare(Buffer.from(ours.buffer, 0, n), theirs.subarray(0, n)) !== 0) {
        let i = 0;
        while (ours[i] === theirs[i]) i++;
        assert.fail(`byte ${off + i} differs: ours ${ours[i]} qemu ${theirs[i]}`);
      }
    }
  } finally { fs.closeSync(fd); }
}

export async function collect(dev: BlockDevice, offset = 0, length = dev.virtualSize): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const e of dev.extents(offset, length)) out.push(e);
  return out;
}

type Run = { start: number; length: number; cls: 'data' | 'zero' | 'unalloc'; offset?: number };

function merge(runs: Run[]): Run[] {
  const out: Run[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.cls === r.cls && last.start + last.length === r.start
      && (last.offset === undefined) === (r.offset === undefined)
      && (last.offset === undefined || last.offset + last.length === r.offset)) last.length += r.length;
    else out.push({ ...r });
  }
  return out;
}

/** Compares our extents of a single layer with qemu-img map (depth 0 entries). */
export async function assertMapMatches(dev: BlockDevice, img: string): Promise<void> {
  const qm: any[] = JSON.parse(qemuImg('map', '--output', 'json', '-f', 'qcow2', img));
  const theirs = merge(qm.map((e) => ({
    start: e.start, length: e.length,
    cls: e.depth > 0 || !e.present ? 'unalloc' : e.data ? 'data' : 'zero',
    offset: e.data && e.depth === 0 ? e.offset : undefined,
  } as Run)));
  const ours = merge((await collect(dev)).map((e) => ({
    start: e.offset, length: e.length,
    cls: e.kind === 'unallocated' ? 'unalloc' : e.kind,
    offset: e.kind === 'data' ? e.hostOffset : undefined,
  } as Run)));
  assert.deepEqual(ours, theirs);
}

export function rmrf(dir: string): void { fs.rmSync(dir, { recursive: true, force: true }); }
