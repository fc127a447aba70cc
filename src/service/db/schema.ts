// Table types for kysely. Booleans are stored as 0/1 integers and timestamps as ISO-8601
// text (second precision, 'Z') so SQLite and PostgreSQL share one code path and one
// ordering.
import type { Generated } from 'kysely';

export interface ImagesTable {
  id: string;
  name: string | null;
  status: string;
  visibility: string;
  protected: number;
  os_hidden: number;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  owner: string | null;
  size: number | null;
  virtual_size: number | null;
  min_ram: number;
  min_disk: number;
  disk_format: string | null;
  container_format: string | null;
  created_at: string;
  updated_at: string;
  deleted: number;
  deleted_at: string | null;
  /** Store key of the image's data (internal; never serialized). */
  location: string | null;
  /** Bytes being uploaded right now (counts toward the staging quota). */
  staging_size: number;
}

export interface ImagePropertiesTable {
  image_id: string;
  name: string;
  value: string;
}

export interface ImageTagsTable {
  image_id: string;
  value: string;
}

export interface ImageMembersTable {
  image_id: string;
  member: string;
  status: string;
  created_at: string;
  updated_at: string;
}

export interface Database {
  images: ImagesTable;
  image_properties: ImagePropertiesTable;
  image_tags: ImageTagsTable;
  image_members: ImageMembersTable;
}

export type ImageRow = ImagesTable;
export type MemberRow = ImageMembersTable;
// Keeps Generated importable for future auto-increment columns.
export type _Unused = Generated<number>;
