// The optional native addon (native/seek.c, built by `npm install` through node-gyp).
// Node has no lseek(SEEK_DATA/SEEK_HOLE) nor fallocate; without the addon every file
// reads as fully allocated and preallocation=falloc falls back to writing zeros.
import { createRequire } from 'node:module';

export interface NativeAddon {
  /** whence 0 = SEEK_DATA, 1 = SEEK_HOLE; returns -1 past the last data (ENXIO). */
  seek(fd: number, offset: number, whence: 0 | 1): number;
  /** mode 0 = allocate, 1 = punch a hole (keeping the size). */
  fallocate(fd: number, mode: 0 | 1, offset: number, length: number): void;
}

let loaded: NativeAddon | null | undefined;

/** The addon, or null when it was not built (the pure-JS fallback then applies). */
export function nativeAddon(): NativeAddon | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.IMGPORT_NO_NATIVE === '1') return loaded;
  const require = createRequire(import.meta.url);
  // Same depth from src/engine/io (tsx) and dist/engine/io (built).
  for (const rel of ['../../../build/Release/imgport_native.node', '../../../build/Debug/imgport_native.node']) {
    try {
      loaded = require(rel) as NativeAddon;
      break;
    } catch { /* not built: try the next place, then fall back */ }
  }
  return loaded;
}

/**
 * Data runs of an open file within [offset, offset+length), from SEEK_DATA/SEEK_HOLE.
 * Returns null when the OS or the build cannot tell (callers then treat all as data).
 */
export function seekDataRuns(fd: number, offset: number, length: number): Array<{ offset: number; length: number }> | null {
  const addon = nativeAddon();
  if (!addon) return null;
  const end = offset + length;
  const runs: Array<{ offset: number; length: number }> = [];
  let pos = offset;
  try {
    while (pos < end) {
      const data = addon.seek(fd, pos, 0);
      if (data < 0 || data >= end) break;
      let hole = addon.seek(fd, data, 1);
      if (hole < 0 || hole > end) hole = end;
      runs.push({ offset: data, length: hole - data });
      pos = hole;
    }
  } catch {
    return null; // e.g. EOPNOTSUPP on an odd filesystem: not knowing is fine
  }
  return runs;
}
