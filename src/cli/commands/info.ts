import type { Command } from '../main.js';
import { parseArgs, outputMode, needPositional, printJson, str } from '../args.js';
import { EXIT } from '../exit.js';
import { imageInfo, infoJson, infoHuman } from '../../engine/ops/info.js';

const USAGE = 'imgport info [-f FMT] [--output human|json] [--backing-chain] [-U] FILE';

export const command: Command = {
  summary: 'show what an image is (format, sizes, backing file, format details)',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', long: 'format', value: true },
      { long: 'output', value: true },
      { long: 'backing-chain' },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n  -f FMT            image format (probed when absent)\n  --output json     qemu-img's JSON keys\n  --backing-chain   every image of the backing chain, top first\n`);
      return EXIT.OK;
    }
    needPositional(positional, 1, USAGE);
    const mode = outputMode(opts.output);
    const chain = opts['backing-chain'] === true;
    const infos = await imageInfo(positional[0]!, { format: str(opts.format), backingChain: chain });
    if (mode === 'json') printJson(chain ? infos.map(infoJson) : infoJson(infos[0]!));
    else process.stdout.write(infos.map(infoHuman).join('\n\n') + '\n');
    return EXIT.OK;
  },
};
