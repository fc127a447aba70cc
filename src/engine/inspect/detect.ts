// Which formats the bytes are valid as, in a confidence order that cannot be fooled:
// a header at offset 0 beats an ISO volume descriptor at 32 KiB, which beats a VHD
// footer at the end, which beats raw. More than one match is a polyglot and is refused:
// different readers would see different disks in the same bytes.
import type { FormatChecker } from './types.js';
import { Report, type ResolvedOptions } from './types.js';
import { type ImageView, HEAD_CAP, HEAD_MIN, HUGE } from './view.js';
import { qcow2 } from './formats/qcow2.js';
import { qcow, qed } from './formats/qcow.js';
import { vmdk, streamFooter } from './formats/vmdk.js';
import { vhd, tailFooter } from './formats/vhd.js';
import { vhdx } from './formats/vhdx.js';
import { vdi } from './formats/vdi.js';
import { iso } from './formats/iso.js';
import { checkPartitions, plausiblePartitionTable } from './formats/gpt.js';
import { bochs, bzip2, cloop, dmg, gzip, luks, ova, ploop, xz, zstd } from './formats/misc.js';

/** Headers at offset 0 first (mutually exclusive magics), then ISO, then trailers. */
const vhdHead: FormatChecker = { ...vhd, match: (v) => vhd.match(v) && v.head[0] === 0x63 && v.head[1] === 0x6f };
const vhdTail: FormatChecker = { ...vhd, match: (v) => tailFooter(v) !== null };
export const CHECKERS: FormatChecker[] = [qcow2, qcow, qed, vmdk, vhdx, vdi, vhdHead, luks, ploop, bochs, cloop, gzip, xz, bzip2, zstd, ova, iso, vhdTail, dmg];

/**
 * How many leading bytes the checks want, from the head alone (never the size, which a
 * stream learns only at the end), so the stream and the file build the same view.
 */
export function computeNeed(head: Uint8Array): number {
  const v: ImageView = { head, tail: new Uint8Array(0), size: HUGE };
  let need = HEAD_MIN;
  for (const c of CHECKERS) {
    if (c.need && c.match(v)) need = Math.max(need, c.need(head));
  }
  return Math.min(need, HEAD_CAP);
}

export function analyze(v: ImageView, opts: ResolvedOptions): Report {
  const r = new Report(opts);
  const matched = CHECKERS.filter((c) => c.match(v));
  // One VHD is one format whether its footer is seen at the start, the end, or both.
  const names = [...new Set(matched.map((c) => c.name))];
  const primary = matched[0];
  try {
    if (primary) primary.inspect(v, r);
    else {
      r.format = 'raw';
      // qemu (and the engine's raw driver) round a raw file up to whole sectors.
      r.setVirtualSize(Math.ceil(v.size / 512) * 512);
      checkPartitions(v, r);
    }
  } catch (err) {
    // A checker bug must not turn into a pass: refuse, and say it is ours.
    r.unsafe('internal-error', `inspector error: ${(err as Error)?.message ?? String(err)}`);
  }
  // Polyglots.
  const also: string[] = names.slice(1);
  if (!names.includes('vmdk') && streamFooter(v)) also.push('vmdk (streamOptimized footer at the end)');
  if (primary && primary.name !== 'iso' && !(primary === vhdTail) && plausiblePartitionTable(v.head)) also.push('a raw disk with an MBR/GPT partition table');
  if (also.length > 0) {
    r.unsafe('polyglot', `the content is valid as ${primary ? primary.name : 'raw'} and also as ${also.join(', ')}; different readers would see different disks`);
  }
  return r;
}
