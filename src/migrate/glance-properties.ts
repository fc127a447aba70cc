// OpenStack image properties for the converted guest, from the same TargetPlan as the
// libvirt XML: Nova reads hw_* to build the instance the way we would have defined it.

import type { TargetPlan } from './target.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export interface GlanceDiskImage {
  /** Image name in Glance. */
  name: string;
  /** The converted file (absolute). */
  file: string;
  disk_format: string;
  container_format: 'bare';
  /** GiB, rounded up from the virtual size: Nova refuses flavors smaller than this. */
  min_disk: number;
  /** MiB. Set on every disk image: any of them could be booted from. */
  min_ram: number;
  virtual_size?: number;
  /** Image properties (hw_*, os_*): strings, as Glance stores them. */
  properties: Record<string, string>;
}

export interface GlanceDocument {
  name: string;
  properties: Record<string, string>;
  min_ram: number;
  images: GlanceDiskImage[];
}

export function glanceProperties(p: TargetPlan): Record<string, string> {
  const props: Record<string, string> = {
    architecture: p.arch,
    hypervisor_type: 'kvm',
    vm_mode: 'hvm',
    hw_disk_bus: p.diskBus,
    hw_vif_model: p.nicModel,
    hw_machine_type: p.machine,
    hw_firmware_type: p.firmware,
    hw_video_model: p.graphics === 'spice' ? 'qxl' : 'vga',
  };
  if (p.diskBus === 'scsi') props.hw_scsi_model = 'virtio-scsi';
  if (p.secureBoot) props.os_secure_boot = 'required';
  if (p.topology) {
    props.hw_cpu_sockets = String(p.topology.sockets);
    props.hw_cpu_cores = String(p.topology.cores);
    props.hw_cpu_threads = String(p.topology.threads);
  }
  if (p.guest.family === 'linux' || p.guest.family === 'windows') props.os_type = p.guest.family;
  if (p.guest.distro) props.os_distro = p.guest.distro;
  if (p.guest.version) props.os_version = p.guest.version;
  if (p.guest.virtio) props.hw_rng_model = 'virtio';
  if (p.guest.family === 'linux') props.hw_qemu_guest_agent = 'yes';
  return props;
}

/** `sizes` maps each disk's dev to its virtual size in bytes (from the converted image or the source). */
export function glanceDocument(p: TargetPlan, sizes: Map<string, number>): GlanceDocument {
  const properties = glanceProperties(p);
  const min_ram = Math.ceil(p.memoryKiB * 1024 / MiB);
  const images: GlanceDiskImage[] = p.disks.map((d) => {
    const size = sizes.get(d.dev) ?? d.source.capacity;
    return {
      name: p.disks.length === 1 ? p.name : `${p.name}-${d.dev}`,
      file: d.file,
      disk_format: d.format,
      container_format: 'bare',
      min_disk: size !== undefined ? Math.ceil(size / GiB) : 0,
      min_ram,
      virtual_size: size,
      properties,
    };
  });
  return { name: p.name, properties, min_ram, images };
}
