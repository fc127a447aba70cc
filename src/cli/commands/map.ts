import type { Command } from '../main.js';
import { parseArgs, outputMode, needPositional, str } from '../args.js';
import { EXIT } from '../exit.js';
import { mapImage, mapJson, mapHuman } from '../../engine/ops/map.js';
import { parseSize } from '../../engine/ops/size.js';

const USAGE = 'imgport map [-f FMT] [--output human|json] [--start-offset N] [--max-length N] [-U] FILE';

export const command: Command = {
  summary: 'show where each run of guest data lives in the backing chain',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', long: 'format', value: true },
      { long: 'output', value: true },
      { short: 's', long: 'start-offset', value: true },
      { short: 'l', long: 'max-length', value: true },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n  --output json   one entry per run: start, length, depth, present, zero, data, offset\n  human output lists only runs stored plainly in a file\n`);
      return EXIT.OK;
    }
    needPositional(positional, 1, USAGE);
    const mode = outputMode(opts.output);
    const start = str(opts['start-offset']) !== undefined ? parseSize(str(opts['start-offset'])!, 'start offset') : undefined;
    const length = str(opts['max-length']) !== undefined ? parseSize(str(opts['max-length'])!, 'length') : undefined;
    const entries = await mapImage(positional[0]!, { format: str(opts.format), start, length });
    process.stdout.write((mode === 'json' ? mapJson(entries) : mapHuman(entries)) + '\n');
    return EXIT.OK;
  },
};
