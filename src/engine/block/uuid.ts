// UUIDs/GUIDs in the two byte orders disk formats use: RFC 4122 (big-endian fields:
// VHD, VDI) and Microsoft's GUID layout (first three fields little-endian: VHDX).
import { randomBytes } from 'node:crypto';

/** 16 random bytes shaped as a version-4 UUID. */
export function randomUuid(): Uint8Array {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return new Uint8Array(b);
}

export function isNullUuid(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function hex(b: Uint8Array): string { return Buffer.from(b).toString('hex'); }

/** Text form of 16 bytes read in RFC 4122 (big-endian) order. */
export function uuidToString(b: Uint8Array): string {
  const h = hex(b.subarray(0, 16));
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Swaps between RFC byte order and Microsoft GUID byte order (its own inverse). */
function swapGuid(b: Uint8Array): Uint8Array {
  const o = new Uint8Array(16);
  o.set(b.subarray(0, 16));
  o.subarray(0, 4).reverse();
  o.subarray(4, 6).reverse();
  o.subarray(6, 8).reverse();
  return o;
}

/** Text form of a Microsoft GUID as stored on disk. */
export function guidToString(b: Uint8Array): string { return uuidToString(swapGuid(b)); }

/** On-disk bytes of a Microsoft GUID given as text ("2DC27766-F623-4200-9D64-115E9BFD4A08"). */
export function guidFromString(s: string): Uint8Array {
  const h = s.replace(/[{}-]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`bad GUID ${s}`);
  return swapGuid(new Uint8Array(Buffer.from(h, 'hex')));
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
