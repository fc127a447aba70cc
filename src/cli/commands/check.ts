import type { Command } from '../main.js';
import { parseArgs, outputMode, needPositional, printJson, str } from '../args.js';
import { EXIT } from '../exit.js';
import { InvalidArgument, ImgportError } from '../../engine/errors.js';
import { checkImage, checkJson, checkHuman } from '../../engine/ops/check.js';

const USAGE = 'imgport check [-f FMT] [-r leaks|all] [--output human|json] [-U] FILE';

export const command: Command = {
  summary: "check an image's metadata for consistency (and repair with -r)",
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', long: 'format', value: true },
      { short: 'r', long: 'repair', value: true },
      { long: 'output', value: true },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n  -r leaks   free leaked clusters\n  -r all     also fix corruptions\nexit: 0 clean, 1 check failed, 2 corruptions, 3 leaks only, 63 format cannot be checked\n`);
      return EXIT.OK;
    }
    needPositional(positional, 1, USAGE);
    const mode = outputMode(opts.output);
    const repair = str(opts.repair);
    if (repair !== undefined && repair !== 'leaks' && repair !== 'all') throw new InvalidArgument(`-r must be 'leaks' or 'all', not '${repair}'`);
    let r;
    try {
      r = await checkImage(positional[0]!, { format: str(opts.format), repair });
    } catch (err) {
      if (err instanceof ImgportError && err.code === 'UNSUPPORTED' && /does not support checks/.test(err.message)) {
        process.stderr.write(`imgport: ${err.describe()}\n`);
        return EXIT.CHECK_UNSUPPORTED;
      }
      throw err;
    }
    if (mode === 'json') printJson(checkJson(r));
    else process.stdout.write(checkHuman(r) + '\n');
    if (r.checkErrors) return EXIT.ERROR;
    if (r.corruptions) return EXIT.CHECK_CORRUPT;
    if (r.leaks) return EXIT.CHECK_LEAKS;
    return EXIT.OK;
  },
};
