// CRC-32C (Castagnoli), as VHDX uses for headers, region tables and log entries.
import { crc32c as native } from '@node-rs/crc32';

/** CRC-32C of `data`, computed as if the 4 bytes at `skipAt` (the stored checksum) were zero. */
export function crc32c(data: Uint8Array, skipAt = -1): number {
  if (skipAt < 0) return native(data) >>> 0;
  const copy = Buffer.from(data);
  copy.fill(0, skipAt, skipAt + 4);
  return native(copy) >>> 0;
}
