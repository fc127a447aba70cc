// Exit statuses, in one place (documented in README "Exit codes").
import { ImgportError } from '../engine/errors.js';

export const EXIT = {
  OK: 0,
  /** Any failure: bad arguments, unreadable or corrupt image, I/O error. */
  ERROR: 1,
  /** compare: images differ (qemu-img compare's 1); errors in compare exit 2 like qemu-img. */
  DIFFER: 1,
  COMPARE_ERROR: 2,
  /** check: corruptions found (2) / only leaks found (3), as qemu-img check. */
  CHECK_CORRUPT: 2,
  CHECK_LEAKS: 3,
  /** check: the format has no consistency check (qemu-img's 63). */
  CHECK_UNSUPPORTED: 63,
  /** inspect / any refusal on safety grounds. */
  UNSAFE: 3,
  /** convert interrupted by SIGINT/SIGTERM (128 + 2, as shells report it); the output was removed. */
  INTERRUPTED: 130,
} as const;

/** Prints an error the way every command does and returns its exit status. */
export function reportError(err: unknown, prog = 'imgport'): number {
  if (err instanceof ImgportError) {
    process.stderr.write(`${prog}: ${err.describe()}\n`);
    return err.code === 'UNSAFE_IMAGE' ? EXIT.UNSAFE : EXIT.ERROR;
  }
  // Anything else is a bug in imgport: say so, with the stack, so it gets reported.
  process.stderr.write(`${prog}: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.ERROR;
}
