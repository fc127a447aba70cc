// Cylinder/head/sector geometry for disk images that carry one (VHD footers, VDI
// headers). The algorithm is the one in the VHD specification's appendix; qemu and
// Virtual PC use it too.

export interface Chs { cylinders: number; heads: number; sectorsPerTrack: number }

/** The largest geometry a VHD footer can hold: 65535 x 16 x 255 sectors (about 127 GiB). */
export const VHD_MAX_CHS_SECTORS = 65535 * 16 * 255;

/** Geometry for `totalSectors` 512-byte sectors (capped at the maximum), per the VHD spec. */
export function vhdGeometry(totalSectors: number): Chs {
  const t = Math.min(totalSectors, VHD_MAX_CHS_SECTORS);
  let spt: number;
  let heads: number;
  let cth: number;
  if (t >= 65535 * 16 * 63) {
    spt = 255; heads = 16; cth = Math.floor(t / spt);
  } else {
    spt = 17; cth = Math.floor(t / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) { spt = 31; heads = 16; cth = Math.floor(t / spt); }
    if (cth >= heads * 1024) { spt = 63; heads = 16; cth = Math.floor(t / spt); }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

export function chsSectors(g: Chs): number { return g.cylinders * g.heads * g.sectorsPerTrack; }

/**
 * The size qemu (and Virtual PC) give a new VHD of `requested` bytes: the smallest CHS
 * geometry holding at least that many sectors, and the size that geometry spans. Above
 * the CHS limit the geometry is the maximum and the size stays the requested one
 * (rounded up to a sector), which readers then take from the footer.
 */
export function vhdCreateGeometry(requested: number): { geometry: Chs; size: number } {
  const want = Math.ceil(requested / 512);
  let g: Chs = { cylinders: 0, heads: 0, sectorsPerTrack: 0 };
  // The spec's formula rounds down; step up until the geometry covers the request.
  for (let i = 0; want > chsSectors(g) && want + i <= VHD_MAX_CHS_SECTORS + 1; i++) {
    g = vhdGeometry(want + i);
    if (chsSectors(g) === VHD_MAX_CHS_SECTORS) break;
  }
  if (chsSectors(g) === VHD_MAX_CHS_SECTORS || want > VHD_MAX_CHS_SECTORS) {
    return { geometry: vhdGeometry(VHD_MAX_CHS_SECTORS), size: want * 512 };
  }
  return { geometry: g, size: chsSectors(g) * 512 };
}
