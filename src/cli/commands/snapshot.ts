import type { Command } from '../main.js';
import { parseArgs, needPositional, str } from '../args.js';
import { EXIT } from '../exit.js';
import { InvalidArgument } from '../../engine/errors.js';
import { snapshotOp, type SnapshotAction } from '../../engine/ops/snapshot.js';
import { snapshotTable } from '../../engine/ops/info.js';

const USAGE = 'imgport snapshot [-f FMT] [-l | -c NAME | -a NAME | -d NAME] FILE';

export const command: Command = {
  summary: 'list, create, apply or delete internal snapshots',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', value: true, key: 'format' },
      { short: 'l', key: 'list' },
      { short: 'c', value: true, key: 'create' },
      { short: 'a', value: true, key: 'apply' },
      { short: 'd', value: true, key: 'delete' },
    ]);
    if (help) {
      process.stdout.write(`usage: ${USAGE}\n\n  -l        list snapshots\n  -c NAME   create\n  -a NAME   revert the image to a snapshot\n  -d NAME   delete\n`);
      return EXIT.OK;
    }
    needPositional(positional, 1, USAGE);
    const picked = (['list', 'create', 'apply', 'delete'] as const).filter((k) => opts[k] !== undefined);
    if (picked.length > 1) throw new InvalidArgument('give only one of -l, -c, -a, -d');
    const op = picked[0] ?? 'list';
    const action: SnapshotAction = op === 'list' ? { op } : { op, name: str(opts[op])! };
    const list = await snapshotOp(positional[0]!, action, { format: str(opts.format) });
    if (op === 'list' && list.length > 0) {
      process.stdout.write('Snapshot list:\n' + snapshotTable(list.map((s) => ({
        id: s.id, name: s.name, 'vm-state-size': s.vmStateSize, 'date-sec': s.dateSec, 'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9), 'vm-clock-nsec': s.vmClockNsec % 1e9, icount: s.icount,
      }))) + '\n');
    }
    return EXIT.OK;
  },
};
