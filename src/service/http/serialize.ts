// Response bodies, in Glance's shape and key order.
import type { ImageRecord } from '../db/repo.js';
import type { MemberRow } from '../db/schema.js';

export function imageView(img: ImageRecord): Record<string, unknown> {
  const v: Record<string, unknown> = { ...img.properties };
  v.name = img.name;
  v.disk_format = img.disk_format;
  v.container_format = img.container_format;
  v.visibility = img.visibility;
  v.size = img.size;
  v.virtual_size = img.virtual_size;
  v.status = img.status;
  v.checksum = img.checksum;
  v.protected = img.protected === 1;
  v.min_ram = img.min_ram;
  v.min_disk = img.min_disk;
  v.owner = img.owner;
  v.os_hidden = img.os_hidden === 1;
  v.os_hash_algo = img.os_hash_algo;
  v.os_hash_value = img.os_hash_value;
  v.id = img.id;
  v.created_at = img.created_at;
  v.updated_at = img.updated_at;
  v.tags = img.tags;
  v.self = `/v2/images/${img.id}`;
  v.file = `/v2/images/${img.id}/file`;
  v.schema = '/v2/schemas/image';
  return v;
}

export function memberView(m: MemberRow): Record<string, unknown> {
  return {
    created_at: m.created_at,
    image_id: m.image_id,
    member_id: m.member,
    schema: '/v2/schemas/member',
    status: m.status,
    updated_at: m.updated_at,
  };
}
