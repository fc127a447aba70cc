// Helpers shared by the vmdk, ova and compressed-wrapper tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { BlockDevice, Extent } from '../../../../src/engine/block/device.js';
import { formatByName } from '../../../../src/engine/block/open.js';
import { copyPlan } from '../../../../src/engine/block/chain.js';
import { copyToWriter } from '../../../../src/engine/convert/copy.js';
import { FileSink } from '../../../../src/engine/io/file.js';
import type { ByteSink } from '../../../../src/engine/io/source.js';

export function tmp(): { dir: string; p(name: string): string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-'));
  return { dir, p: (n) => path.join(dir, n), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export function sh(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

export function qemuIo(file: string, fmt: string, cmds: string[]): void {
  sh('qemu-io', ['-f', fmt, ...cmds.flatMap((c) => ['-c', c]), file]);
}

export function qemuInfo(file: string): any {
  return JSON.parse(sh('qemu-img', ['info', '--output', 'json', file]));
}

/** qemu-img convert -O raw, then our device must read exactly those bytes at the given ranges (whole disk when omitted). */
export async function assertSameAsQemu(dev: BlockDevice, file: string, fmt: string, dir: string, ranges?: Array<[number, number]>): Promise<void> {
  const rawPath = path.join(dir, `qemu-${path.basename(file)}.raw`);
  sh('qemu-img', ['convert', '-f', fmt, '-O', 'raw', file, rawPath]);
  const fd = fs.openSync(rawPath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size !== dev.virtualSize) throw new Error(`virtual size ${dev.virtualSize}, qemu says ${size}`);
    const list = ranges ?? [[0, size]];
    const chunk = 4 << 20;
    const ours = Buffer.alloc(chunk);
    const theirs = Buffer.alloc(chunk);
    for (const [start, len] of list) {
      for (let o = start; o < start + len; o += chunk) {
        const n = Math.min(chunk, start + len - o);
        await dev.read(ours.subarray(0, n), o);
        fs.readSync(fd, theirs, 0, n, o);
        if (!ours.subarray(0, n).equals(theirs.subarray(0, n))) {
          let i = 0;
          while (ours[i] === theirs[i]) i++;
          throw new Error(`${file}: byte ${o + i} differs from qemu-img (ours ${ours[i]}, qemu ${theirs[i]})`);
        }
      }
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(rawPath);
  }
}

export async function collect(it: AsyncIterable<Extent>): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** Our extents vs qemu-img map: same data/not-data runs and host offsets (for uncompressed data). */
export async function assertMapMatchesQemu(dev: BlockDevice, file: string, fmt: string): Promise<void> {
  const q = JSON.parse(sh('qemu-img', ['map', '-f', fmt, '--output', 'json', file])) as Array<{ start: number; length: number; data: boolean; offset?: number }>;
  type R = { s: number; l: number; data: boolean; off?: number };
  const norm = (rs: R[]) => {
    const out: R[] = [];
    for (const r of rs) {
      const last = out[out.length - 1];
      if (last && last.data === r.data && last.s + last.l === r.s
        && ((last.off === undefined && r.off === undefined) || (last.off !== undefined && r.off !== undefined && last.off + last.l === r.off))) last.l += r.l;
      else out.push({ ...r });
    }
    return out;
  };
  const theirs = norm(q.map((e) => ({ s: e.start, l: e.length, data: e.data, off: e.data ? e.offset : undefined })));
  const ours = norm((await collect(dev.extents(0, dev.virtualSize))).map((e) => ({ s: e.offset, l: e.length, data: e.kind === 'data', off: e.kind === 'data' ? e.hostOffset : undefined })));
  const show = (rs: R[]) => JSON.stringify(rs.slice(0, 8));
  if (JSON.stringify(ours) !== JSON.stringify(theirs)) throw new Error(`map differs from qemu-img map for ${file}:\nours ${show(ours)}\nqemu ${show(theirs)}`);
}

/** Writes `src` as `format` with the driver directly (siblings created next to `dst`). */
export async function writeImage(src: BlockDevice, dst: string, format: string, options: Record<string, string>, sink?: ByteSink): Promise<void> {
  const s = sink ?? await FileSink.create(dst);
  const plan = await copyPlan(src, { topOnly: false });
  const w = await formatByName(format).create!({
    sink: s, virtualSize: src.virtualSize, options, plan,
    createSibling: (n) => FileSink.create(path.join(path.dirname(dst), n)),
    removeSibling: async (n) => fs.rmSync(path.join(path.dirname(dst), n), { force: true }),
  });
  try {
    await copyToWriter(src, w, plan, {});
    await w.finish();
  } catch (err) {
    await w.abort();
    throw err;
  } finally {
    if (!sink) await s.close();
  }
}

/** A non-seekable sink collecting what it is given in order (a pipe stand-in that checks order). */
export class PipeSink implements ByteSink {
  readonly seekable = false;
  chunks: Buffer[] = [];
  private pos = 0;
  constructor(readonly name: string) {}
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (offset !== this.pos) throw new Error(`pipe written out of order: ${offset} != ${this.pos}`);
    this.chunks.push(Buffer.from(buf));
    this.pos += buf.length;
  }
  async sync(): Promise<void> {}
  async close(): Promise<void> {}
  get data(): Buffer { return Buffer.concat(this.chunks); }
}
