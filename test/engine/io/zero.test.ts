import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAllZero, scanZeroRuns } from '../../../src/engine/io/zero.js';
import { pattern } from '../ops/helpers.js';

/** The slow, obvious answer, to check the memcmp-based one against. */
function naive(buf: Buffer, base: number, block: number): Array<[number, number, boolean]> {
  const out: Array<[number, number, boolean]> = [];
  let pos = 0;
  while (pos < buf.length) {
    const blockEnd = Math.min(buf.length, (Math.floor((base + pos) / block) + 1) * block - base);
    const whole = blockEnd - pos === block;
    const zero = whole && buf.subarray(pos, blockEnd).every((b) => b === 0);
    const last = out[out.length - 1];
    if (last && last[2] === zero) last[1] = blockEnd;
    else out.push([pos, blockEnd, zero]);
    pos = blockEnd;
  }
  if (out.length === 0) out.push([0, 0, false]);
  return out;
}

test('isAllZero finds a single non-zero byte anywhere, across zero-buffer boundaries', () => {
  const b = Buffer.alloc(3 << 20);
  assert.equal(isAllZero(b), true);
  for (const at of [0, 1 << 20, (1 << 20) - 1, b.length - 1]) {
    b[at] = 7;
    assert.equal(isAllZero(b), false, `byte at ${at}`);
    b[at] = 0;
  }
});

test('scanZeroRuns matches a naive scan for random layouts and unaligned bases', () => {
  for (let round = 0; round < 40; round++) {
    const block = [512, 4096, 65536][round % 3]!;
    const len = 64 + ((round * 7919 * 13) % (300 * 1024));
    const buf = Buffer.alloc(len);
    const noise = pattern(len, round + 1);
    // Scatter a few data islands of varying size.
    for (let k = 0; k < 5; k++) {
      const at = noise.readUInt32LE(k * 4) % len;
      const n = Math.min(len - at, 1 + noise[k]! * 37);
      noise.copy(buf, at, at, at + n);
    }
    const base = round % 2 === 0 ? 0 : (round * 1000) % block;
    const got: Array<[number, number, boolean]> = [];
    scanZeroRuns(buf, base, block, (s, e, z) => got.push([s, e, z]));
    const want = isAllZero(buf) ? [[0, len, true]] : naive(buf, base, block);
    assert.deepEqual(got, want, `round ${round} block ${block} base ${base}`);
  }
});

test('scanZeroRuns with block 0 reports everything as data', () => {
  const got: unknown[] = [];
  scanZeroRuns(Buffer.alloc(8192), 0, 0, (s, e, z) => got.push([s, e, z]));
  assert.deepEqual(got, [[0, 8192, false]]);
});
