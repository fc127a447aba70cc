// The in-memory overlay used for read-only mounts and --dry-run: reads see writes
// (including unaligned ones), the device below never changes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { BlockDevice, Extent } from '../../src/engine/block/device.js';
import { OverlayDevice } from '../../src/guest/fs/overlay.js';
import { SubRangeDevice } from '../../src/guest/partitions.js';

function memDevice(data: Uint8Array, writable = true): BlockDevice & { data: Uint8Array } {
  return {
    format: 'mem', name: 'mem', backing: null, data, virtualSize: data.length,
    async read(buf, off) { buf.set(data.subarray(off, off + buf.length)); },
    ...(writable ? { async write(buf: Uint8Array, off: number) { data.set(buf, off); } } : {}),
    async *extents(offset: number, length: number): AsyncIterable<Extent> { yield { offset, length, kind: 'data' }; },
    describe: () => ({}), async close() {},
  };
}

describe('OverlayDevice', () => {
  it('keeps unaligned writes in memory and merges them into reads', async () => {
    const orig = randomBytes(8192);
    const below = memDevice(Uint8Array.from(orig));
    const ov = new OverlayDevice(below);
    const model = Uint8Array.from(orig);
    for (const [off, len] of [[0, 512], [700, 3], [1000, 1500], [8191, 1], [4096, 4096]] as const) {
      const b = randomBytes(len);
      await ov.write(b, off);
      model.set(b, off);
    }
    const all = new Uint8Array(8192);
    await ov.read(all, 0);
    assert.deepEqual(all, model);
    const part = new Uint8Array(777);
    await ov.read(part, 650);
    assert.deepEqual(part, model.subarray(650, 650 + 777));
    assert.deepEqual(below.data, Uint8Array.from(orig), 'device below untouched');
    await assert.rejects(ov.write(new Uint8Array(2), 8191), /past the end/);
  });
});

describe('SubRangeDevice', () => {
  it('shifts reads and writes and refuses to leave its window', async () => {
    const below = memDevice(new Uint8Array(4096));
    const sub = new SubRangeDevice(below, 1024, 2048, 'p1');
    await sub.write!(Uint8Array.from([1, 2, 3]), 0);
    assert.deepEqual([...below.data.subarray(1024, 1027)], [1, 2, 3]);
    await assert.rejects(sub.write!(new Uint8Array(2), 2047), /outside the partition/);
    await assert.rejects(sub.read(new Uint8Array(1), -1), /outside the partition/);
    const ro = new SubRangeDevice(memDevice(new Uint8Array(4096), false), 0, 4096, 'p1');
    assert.equal(ro.write, undefined);
    const ext = [];
    for await (const e of sub.extents(0, 4096)) ext.push(e);
    assert.deepEqual(ext.map((e) => [e.offset, e.length]), [[0, 2048]]);
  });
});
