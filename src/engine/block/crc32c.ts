// CRC-32C (Castagnoli), as VHDX uses for headers, region tables and log entries.
import { createRequire } from 'node:module';

// Loaded on first use: the native module costs tens of milliseconds at start-up, and most
// commands (info on a qcow2, say) never checksum anything.
let native: ((data: Uint8Array) => number) | undefined;
function load(): (data: Uint8Array) => number {
  native ??= (createRequire(import.meta.url)('@node-rs/crc32') as typeof import('@node-rs/crc32')).crc32c;
  return native;
}

/** CRC-32C of `data`, computed as if the 4 bytes at `skipAt` (the stored checksum) were zero. */
export function crc32c(data: Uint8Array, skipAt = -1): number {
  if (skipAt < 0) return load()(data) >>> 0;
  const copy = Buffer.from(data);
  copy.fill(0, skipAt, skipAt + 4);
  return load()(copy) >>> 0;
}
