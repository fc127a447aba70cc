// The rule every reader shares: nothing opens a file named inside an image (backing
// file, external data file, VMDK extent, OVF href, VHD parent locator) unless the
// caller's policy allows that path. Readers call `policy.resolve(...)` and open only the
// path it returns.

import path from 'node:path';
import { UnsafeImage } from './errors.js';

export interface FileAccessPolicy {
  /**
   * Decides whether the image at `fromImage` may open the file it names `reference`.
   * Returns the absolute path to open, or throws UnsafeImage naming the reason.
   * `kind` says what the reference is, for the message.
   */
  resolve(reference: string, fromImage: string, kind: ReferenceKind): string;
}

export type ReferenceKind = 'backing file' | 'data file' | 'extent' | 'parent' | 'ovf file';

/** Refuses every reference: the safe choice for untrusted input. */
export const denyAllReferences: FileAccessPolicy = {
  resolve(reference, fromImage, kind) {
    throw new UnsafeImage(`image refers to ${kind} '${reference}', and following references is not allowed here`, { file: fromImage });
  },
};

/**
 * The CLI default: references are resolved relative to the referring image and must
 * stay inside `root` (by default the referring image's own directory). Absolute paths
 * are allowed only when they resolve inside `root`; `..` escapes, `json:` and protocol
 * pseudo-paths are refused.
 */
export function sameDirectoryPolicy(opts: { root?: string; allowAbsolute?: boolean } = {}): FileAccessPolicy {
  return {
    resolve(reference, fromImage, kind) {
      if (reference.length === 0) throw new UnsafeImage(`empty ${kind} name`, { file: fromImage });
      if (reference.includes('\0')) throw new UnsafeImage(`${kind} name contains a NUL byte`, { file: fromImage });
      if (/^[a-z][a-z0-9+.-]*:/i.test(reference)) {
        throw new UnsafeImage(`${kind} '${reference}' is a protocol or json: pseudo-path, which is never followed`, { file: fromImage });
      }
      const base = path.dirname(path.resolve(fromImage));
      const root = path.resolve(opts.root ?? base);
      if (path.isAbsolute(reference) && !opts.allowAbsolute) {
        throw new UnsafeImage(`${kind} '${reference}' is an absolute path; only files next to the image are followed`, { file: fromImage });
      }
      const target = path.resolve(base, reference);
      const rel = path.relative(root, target);
      if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
        throw new UnsafeImage(`${kind} '${reference}' resolves outside ${root}`, { file: fromImage });
      }
      return target;
    },
  };
}
