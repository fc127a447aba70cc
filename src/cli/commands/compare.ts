import type { Command } from '../main.js';
import { parseArgs, needPositional, str } from '../args.js';
import { EXIT, reportError } from '../exit.js';
import { compareImages } from '../../engine/ops/compare.js';
import { progressReporter } from '../progress.js';

const USAGE = 'imgport compare [-f FMT] [-F FMT] [-s] [-p] [-U] FILE1 FILE2';

export const command: Command = {
  summary: 'compare the guest contents of two images (exit 0 same, 1 different, 2 error)',
  async run(argv) {
    try {
      const { opts, positional, help } = parseArgs(argv, [
        { short: 'f', long: 'format', value: true, key: 'fmtA' },
        { short: 'F', value: true, key: 'fmtB' },
        { short: 's', long: 'strict' },
        { short: 'p', long: 'progress', key: 'progress' },
      ]);
      if (help) {
        process.stdout.write(`usage: ${USAGE}\n\n  -f FMT   format of FILE1\n  -F FMT   format of FILE2\n  -s       strict: sizes and allocation must match too\nexit: 0 identical, 1 different, 2 error\n`);
        return EXIT.OK;
      }
      needPositional(positional, 2, USAGE);
      const r = await compareImages(positional[0]!, positional[1]!, {
        formatA: str(opts.fmtA), formatB: str(opts.fmtB), strict: opts.strict === true,
        onProgress: progressReporter(opts.progress ? 'bar' : undefined, process.stderr),
      });
      if (r.sizeMismatch && !opts.strict) process.stdout.write('Warning: Image size mismatch!\n');
      if (r.identical) {
        process.stdout.write('Images are identical.\n');
        return EXIT.OK;
      }
      if (r.reason === 'size') process.stdout.write('Strict mode: Image size mismatch!\n');
      else if (r.reason === 'allocation') process.stdout.write(`Strict mode: Offset ${r.offset} block status mismatch!\n`);
      else process.stdout.write(`Content mismatch at offset ${r.offset}!\n`);
      return EXIT.DIFFER;
    } catch (err) {
      reportError(err);
      return EXIT.COMPARE_ERROR;
    }
  },
};
