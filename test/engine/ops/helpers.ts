// Shared by the engine foundation's tests: temp dirs, qemu-img, the CLI through tsx,
// sparse fixture files, and an in-memory BlockDevice with a backing chain.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BlockDevice, DeviceInfo, Extent } from '../../../src/engine/block/device.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const MAIN = path.join(ROOT, 'src/cli/main.ts');

export function tmpDir(): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;

export function qemuImg(args: string[], cwd?: string): SpawnSyncReturns<string> {
  return spawnSync('qemu-img', args, { encoding: 'utf8', cwd });
}

export function qemuIo(file: string, cmds: string[], fmt?: string): void {
  const args = [...(fmt ? ['-f', fmt] : []), ...cmds.flatMap((c) => ['-c', c]), file];
  const r = spawnSync('qemu-io', args, { encoding: 'utf8' });
  if (r.status !== 0 || /error|failed/i.test(r.stdout + r.stderr)) throw new Error(`qemu-io ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

/** Runs the CLI from source through tsx (no build needed). */
export function cli(args: string[], opts: { cwd?: string; shellPrefix?: string } = {}): SpawnSyncReturns<string> {
  const tsx = ['--import', 'tsx'];
  if (opts.shellPrefix) {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = `${opts.shellPrefix}; exec ${q(process.execPath)} ${tsx.join(' ')} ${q(MAIN)} ${args.map(q).join(' ')}`;
    return spawnSync('bash', ['-c', cmd], { encoding: 'utf8', cwd: opts.cwd ?? ROOT });
  }
  return spawnSync(process.execPath, [...tsx, MAIN, ...args], { encoding: 'utf8', cwd: opts.cwd ?? ROOT });
}

/** Deterministic pseudo-random bytes (xorshift), so fixtures are reproducible. */
export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** A sparse file of `size` bytes with the given writes. */
export function sparseFile(file: string, size: number, writes: Array<[offset: number, data: Buffer]>): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    for (const [off, data] of writes) fs.writeSync(fd, data, 0, data.length, off);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * An in-memory BlockDevice: a map of allocated ranges over an optional backing device.
 * Ranges are [offset, data | 'zero']; everything else is unallocated.
 */
export class MemDevice implements BlockDevice {
  readonly format = 'mem';
  reads = 0;
  constructor(readonly name: string, readonly virtualSize: number, readonly backing: BlockDevice | null,
    private ranges: Array<[number, Buffer | number]>, private failReadAt?: number) {
    this.ranges.sort((a, b) => a[0] - b[0]);
  }
  private len(r: [number, Buffer | number]): number { return typeof r[1] === 'number' ? r[1] : r[1].length; }
  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.reads++;
    if (this.failReadAt !== undefined && offset <= this.failReadAt && this.failReadAt < offset + buf.length) {
      const { IoError } = await import('../../../src/engine/errors.js');
      throw new IoError(`read at offset ${this.failReadAt}: simulated EIO`, { file: this.name });
    }
    for await (const e of this.extents(offset, buf.length)) {
      const dst = buf.subarray(e.offset - offset, e.offset - offset + e.length);
      if (e.kind === 'zero') dst.fill(0);
      else if (e.kind === 'unallocated') {
        if (this.backing && e.offset < this.backing.virtualSize) {
          const n = Math.min(e.length, this.backing.virtualSize - e.offset);
          await this.backing.read(dst.subarray(0, n), e.offset);
          dst.fill(0, n);
        } else dst.fill(0);
      } else {
        const r = this.ranges.find((x) => x[0] <= e.offset && e.offset < x[0] + this.len(x))!;
        const data = r[1] as Buffer;
        dst.set(data.subarray(e.offset - r[0], e.offset - r[0] + e.length));
      }
    }
  }
  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    let pos = offset;
    const end = offset + length;
    for (const r of this.ranges) {
      const s = Math.max(r[0], pos), e = Math.min(r[0] + this.len(r), end);
      if (e <= s) continue;
      if (s > pos) yield { offset: pos, length: s - pos, kind: 'unallocated' };
      yield { offset: s, length: e - s, kind: typeof r[1] === 'number' ? 'zero' : 'data' };
      pos = e;
    }
    if (pos < end) yield { offset: pos, length: end - pos, kind: 'unallocated' };
  }
  describe(): DeviceInfo { return {}; }
  async close(): Promise<void> { await this.backing?.close(); }
}
