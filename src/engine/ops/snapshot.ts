// `snapshot`: internal snapshots, through the format's SnapshotOps.
import type { SnapshotInfo, SnapshotOps } from '../block/device.js';
import type { FileAccessPolicy } from '../policy.js';
import { openImage } from '../block/open.js';
import { InvalidArgument, UnsupportedFeature } from '../errors.js';

export type SnapshotAction = { op: 'list' } | { op: 'create' | 'apply' | 'delete'; name: string };

export async function snapshotOp(file: string, action: SnapshotAction, opts: { format?: string; policy?: FileAccessPolicy } = {}): Promise<SnapshotInfo[]> {
  if (action.op !== 'list' && !action.name) throw new InvalidArgument('snapshot name is missing', { file });
  const dev = await openImage(file, { format: opts.format, writable: action.op !== 'list', openBacking: false, policy: opts.policy });
  try {
    const ops: SnapshotOps | undefined = dev.snapshots;
    if (!ops) throw new UnsupportedFeature(`format '${dev.format}' does not support internal snapshots`, { file });
    switch (action.op) {
      case 'list': return ops.list();
      case 'create':
        if (ops.list().some((s) => s.name === action.name)) throw new InvalidArgument(`a snapshot named '${action.name}' already exists`, { file });
        await ops.create(action.name); break;
      case 'apply': await ops.apply(action.name); break;
      case 'delete': await ops.delete(action.name); break;
    }
    await dev.flush?.();
    return ops.list();
  } finally {
    await dev.close();
  }
}
