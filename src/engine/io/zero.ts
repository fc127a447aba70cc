// Zero detection and zero filling without per-byte JavaScript loops: memcmp against a
// preallocated zero buffer (Buffer.equals) and writes from that same buffer.

const ZERO_SIZE = 1 << 20;
let zeros: Buffer | undefined;

/** A read-only-by-convention buffer of zeros, at least `min` bytes (1 MiB by default). */
export function zeroBuffer(min = ZERO_SIZE): Buffer {
  if (!zeros || zeros.length < min) zeros = Buffer.alloc(Math.max(min, ZERO_SIZE));
  return zeros;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** True when every byte of `buf` is zero. */
export function isAllZero(buf: Uint8Array): boolean {
  const b = asBuffer(buf);
  const z = zeroBuffer();
  for (let pos = 0; pos < b.length; pos += z.length) {
    const n = Math.min(z.length, b.length - pos);
    if (!b.subarray(pos, pos + n).equals(z.subarray(0, n))) return false;
  }
  return true;
}

/**
 * Splits buf (guest bytes at `base`) into data and zero runs at `block` granularity:
 * a zero run is one or more whole blocks (aligned to the guest offset) of zeros. Calls
 * `onRun(start, end, zero)` with offsets relative to buf, runs in order, merged.
 */
export function scanZeroRuns(buf: Uint8Array, base: number, block: number, onRun: (start: number, end: number, zero: boolean) => void): void {
  const b = asBuffer(buf);
  if (block <= 0) { onRun(0, b.length, false); return; }
  if (isAllZero(b)) { onRun(0, b.length, true); return; }
  const z = zeroBuffer(block).subarray(0, block);
  let runStart = 0;
  let runZero: boolean | null = null;
  // First block may be partial when base is not aligned; it is never treated as zero.
  let pos = 0;
  const mis = base % block;
  if (mis !== 0) {
    pos = Math.min(b.length, block - mis);
    runZero = false;
  }
  while (pos < b.length) {
    const n = Math.min(block, b.length - pos);
    // Most data blocks differ at their first or last byte: skip the memcmp for them.
    // Buffer#compare with ranges avoids allocating a subarray per block.
    const zero = n === block && b[pos] === 0 && b[pos + n - 1] === 0 && b.compare(z, 0, block, pos, pos + n) === 0;
    if (runZero === null) runZero = zero;
    else if (zero !== runZero) {
      onRun(runStart, pos, runZero);
      runStart = pos;
      runZero = zero;
    }
    pos += n;
  }
  if (runZero !== null && runStart < b.length) onRun(runStart, b.length, runZero);
}
