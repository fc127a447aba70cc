// The one place the service talks to the engine's stream inspector
// (src/engine/inspect: StreamInspector → InspectVerdict), and turns a verdict into
// Glance's accept/refuse decision for an upload.
import { StreamInspector, type InspectOptions, type InspectVerdict } from '../../engine/inspect/index.js';
import type { ServiceConfig } from '../config.js';

export type { InspectVerdict };
export interface Inspector { push(chunk: Uint8Array): void; finish(): InspectVerdict }

/** Disk formats Glance inspects (others, and non-bare containers, are stored as-is). */
const INSPECTED = new Set(['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso']);

export interface UploadCheck {
  inspector: Inspector;
  /** Throws nothing: returns the reason to refuse the upload, or null to accept it. */
  judge(verdict: InspectVerdict): string | null;
}

/** An inspector for an upload of `diskFormat`/`containerFormat`, or null when not inspected. */
export async function inspectorFor(cfg: ServiceConfig['inspection'], diskFormat: string | null, containerFormat: string | null): Promise<UploadCheck | null> {
  if (!cfg.enabled || !diskFormat || !INSPECTED.has(diskFormat) || containerFormat !== 'bare') return null;
  const opts: InspectOptions = {
    maxVirtualSize: cfg.maxVirtualSize, allowBackingFile: cfg.allowBackingFile, allowDataFile: cfg.allowDataFile, expectedFormat: cfg.requireFormatMatch ? diskFormat : undefined,
  };
  const inspector = new StreamInspector(opts);
  return {
    inspector,
    judge(v) {
      const rawLike = ['raw', 'ami', 'ari', 'aki'].includes(diskFormat);
      const mismatch = v.findings.some((f) => f.code === 'format-mismatch') || (rawLike ? v.format !== 'raw' && !(v.format === 'vhd' && v.subformat === 'fixed') : v.format !== diskFormat);
      if (mismatch && cfg.requireFormatMatch) return `Image format ${v.format} does not match disk_format ${diskFormat}`;
      if (!v.safe) {
        const why = v.findings.filter((f) => f.unsafe && f.code !== 'format-mismatch').map((f) => f.message).join('; ') || 'refused by the image inspector';
        return `Image is not safe: ${why}`;
      }
      return null;
    },
  };
}
