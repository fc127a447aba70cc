// Internal snapshots: list, open (read-only view), create, apply, delete — with
// refcount bookkeeping done by the in-place updater (write.ts).

import type { BlockDevice, SnapshotInfo } from '../../block/device.js';
import { CorruptImage, NotFound } from '../../errors.js';
import type { Qcow2Device } from './device.js';
import { snapshotInfo, type SnapshotEntry } from './snapshot-table.js';

export function findSnapshot(dev: Qcow2Device, nameOrId: string): SnapshotEntry {
  // qemu looks up by id first, then by name.
  const e = dev.snapshotEntries.find((s) => s.id === nameOrId) ?? dev.snapshotEntries.find((s) => s.name === nameOrId);
  if (!e) throw new NotFound(`snapshot '${nameOrId}' not found`, { file: dev.name });
  return e;
}

export function attachSnapshotOps(dev: Qcow2Device): void {
  dev.snapshots = {
    list: (): SnapshotInfo[] => dev.snapshotEntries.map(snapshotInfo),
    async open(nameOrId: string): Promise<BlockDevice> {
      const e = findSnapshot(dev, nameOrId);
      const l1 = new Uint8Array(e.l1Size * 8);
      if (l1.length && await dev.src.read(l1, e.l1TableOffset) !== l1.length) {
        throw new CorruptImage(`L1 table of snapshot '${e.name}' is truncated`, { file: dev.name, offset: e.l1TableOffset });
      }
      const size = e.diskSize ?? dev.virtualSize;
      const needed = Math.ceil(size / dev.map.l1Span);
      if (e.l1Size < needed) throw new CorruptImage(`snapshot '${e.name}' L1 table is too small for its disk size`, { file: dev.name, offset: e.l1TableOffset });
      return dev.view(l1, size);
    },
    create: async (name: string) => (await dev.updater()).snapshotCreate(name),
    apply: async (nameOrId: string) => (await dev.updater()).snapshotApply(findSnapshot(dev, nameOrId)),
    delete: async (nameOrId: string) => (await dev.updater()).snapshotDelete(findSnapshot(dev, nameOrId)),
  };
}
