// JSON schemas served at /v2/schemas/* (the client reads them to know which
// attributes are core) and used to validate request bodies: one definition for both.
const UUID = '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$';
export const DISK_FORMATS = ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'];
export const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'];
export const STATUSES = ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'];
export const VISIBILITIES = ['community', 'public', 'private', 'shared'];

export interface PropSchema {
  type?: string | string[];
  enum?: unknown[];
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  readOnly?: boolean;
  description?: string;
  items?: PropSchema;
  [k: string]: unknown;
}

const str = (description: string, extra: Partial<PropSchema> = {}): PropSchema => ({ type: 'string', description, ...extra });
const nullable = (type: string, description: string, extra: Partial<PropSchema> = {}): PropSchema => ({ type: ['null', type], description, ...extra });
const extraProp = (s: PropSchema): PropSchema => ({ ...s, is_base: false });
const PROPERTY_KEYS_DOC = 'https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html';

export const IMAGE_PROPERTIES: Record<string, PropSchema> = {
  id: str('An identifier for the image', { pattern: UUID }),
  name: nullable('string', 'Descriptive name for the image', { maxLength: 255 }),
  status: str('Status of the image', { readOnly: true, enum: STATUSES }),
  visibility: str('Scope of image accessibility', { enum: VISIBILITIES }),
  protected: { type: 'boolean', description: 'If true, image will not be deletable.' },
  os_hidden: { type: 'boolean', description: 'If true, image will not appear in default image list response.' },
  checksum: nullable('string', 'md5 hash of image contents.', { readOnly: true, maxLength: 32 }),
  os_hash_algo: nullable('string', 'Algorithm to calculate the os_hash_value', { readOnly: true, maxLength: 64 }),
  os_hash_value: nullable('string', 'Hexdigest of the image contents using the algorithm specified by the os_hash_algo', { readOnly: true, maxLength: 128 }),
  owner: nullable('string', 'Owner of the image', { maxLength: 255 }),
  size: nullable('integer', 'Size of image file in bytes', { readOnly: true }),
  virtual_size: nullable('integer', 'Virtual size of image in bytes', { readOnly: true }),
  container_format: nullable('string', 'Format of the container', { enum: [null, ...CONTAINER_FORMATS] }),
  disk_format: nullable('string', 'Format of the disk', { enum: [null, ...DISK_FORMATS] }),
  created_at: str('Date and time of image registration', { readOnly: true }),
  updated_at: str('Date and time of the last image modification', { readOnly: true }),
  tags: { type: 'array', description: 'List of strings related to the image', items: { type: 'string', maxLength: 255 } },
  direct_url: str('URL to access the image file kept in external store', { readOnly: true }),
  min_ram: { type: 'integer', description: 'Amount of ram (in MB) required to boot image.' },
  min_disk: { type: 'integer', description: 'Amount of disk space (in GB) required to boot image.' },
  self: str('An image self url', { readOnly: true }),
  file: str('An image file url', { readOnly: true }),
  stores: str('Store in which image data resides.  Only present when the operator has enabled multiple stores.  May be a comma-separated list of store identifiers.', { readOnly: true }),
  schema: str('An image schema url', { readOnly: true }),
  locations: {
    type: 'array',
    description: 'A set of URLs to access the image file kept in external store',
    items: { type: 'object', properties: { url: { type: 'string', maxLength: 255 }, metadata: { type: 'object' } }, required: ['url', 'metadata'] },
  },
  kernel_id: extraProp(nullable('string', 'ID of image stored in Glance that should be used as the kernel when booting an AMI-style image.', { pattern: UUID })),
  ramdisk_id: extraProp(nullable('string', 'ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image.', { pattern: UUID })),
  instance_uuid: extraProp(str('Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)')),
  architecture: extraProp(str(`Operating system architecture as specified in ${PROPERTY_KEYS_DOC}`)),
  os_distro: extraProp(str(`Common name of operating system distribution as specified in ${PROPERTY_KEYS_DOC}`)),
  os_version: extraProp(str('Operating system version as specified by the distributor.')),
  description: extraProp(str('A human-readable string describing this image.')),
  cinder_encryption_key_id: extraProp(str('Identifier in the OpenStack Key Management Service for the encryption key for the Block Storage Service to use when mounting a volume created from this image')),
  cinder_encryption_key_deletion_policy: extraProp(str("States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property.  If this property is missing, the Image Service will take no action", { enum: ['on_image_deletion', 'do_not_delete'] })),
};

export function imageSchema(): object {
  return {
    name: 'image',
    properties: IMAGE_PROPERTIES,
    additionalProperties: { type: 'string' },
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

export function imagesSchema(): object {
  return {
    name: 'images',
    properties: {
      images: { type: 'array', items: imageSchema() },
      first: { type: 'string' },
      next: { type: 'string' },
      schema: { type: 'string' },
    },
    links: [
      { rel: 'first', href: '{first}' },
      { rel: 'next', href: '{next}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

export function memberSchema(): object {
  return {
    name: 'member',
    properties: {
      member_id: { type: 'string', description: 'An identifier for the image member (tenantId)' },
      image_id: { type: 'string', description: 'An identifier for the image', pattern: UUID },
      created_at: { type: 'string', description: 'Date and time of image member creation' },
      updated_at: { type: 'string', description: 'Date and time of last modification of image member' },
      status: { type: 'string', description: 'The status of this image member', enum: ['pending', 'accepted', 'rejected'] },
      schema: { readOnly: true, type: 'string' },
    },
  };
}

export function membersSchema(): object {
  return {
    name: 'members',
    properties: { members: { type: 'array', items: memberSchema() }, schema: { type: 'string' } },
    links: [{ rel: 'describedby', href: '{schema}' }],
  };
}

// ---- validation against the schema above ----------------------------------------

/** Python-style repr, as Glance's jsonschema messages print values. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as object).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  return String(v);
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'null': return v === null;
    case 'string': return typeof v === 'string';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'boolean': return typeof v === 'boolean';
    case 'array': return Array.isArray(v);
    case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);
    default: return true;
  }
}

/** The first schema violation of `value` for property `key`, as Glance words it, or null. */
export function violation(key: string, value: unknown, where = `schema['properties']['${key}']`): string | null {
  const s: PropSchema = IMAGE_PROPERTIES[key] ?? { type: 'string' };
  if (!IMAGE_PROPERTIES[key]) where = "schema['additionalProperties']";
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  const fail = (what: string, kw: string) => `${what}\n\nFailed validating '${kw}' in ${where}\n\nOn instance['${key}']:\n    ${pyRepr(value)}`;
  if (types.length && !types.some((t) => typeOk(t, value))) return fail(`${pyRepr(value)} is not of type ${types.map((t) => `'${t}'`).join(', ')}`, 'type');
  if (s.enum && !s.enum.includes(value as never)) return fail(`${pyRepr(value)} is not one of ${pyRepr(s.enum)}`, 'enum');
  if (typeof value === 'string') {
    if (s.maxLength !== undefined && value.length > s.maxLength) return fail(`${pyRepr(value)} is too long`, 'maxLength');
    if (s.pattern && !new RegExp(s.pattern).test(value)) return fail(`${pyRepr(value)} does not match ${pyRepr(s.pattern)}`, 'pattern');
  }
  if (typeof value === 'number') {
    if (key === 'min_ram' || key === 'min_disk') {
      if (value < 0) return fail(`${value} is less than the minimum of 0`, 'minimum');
      if (value > 2 ** 31 - 1) return fail(`${value} is greater than the maximum of 2147483647`, 'maximum');
    }
  }
  if (Array.isArray(value) && s.items) {
    for (const item of value) {
      if (!typeOk(String(s.items.type), item)) return fail(`${pyRepr(item)} is not of type '${s.items.type}'`, 'type');
      if (typeof item === 'string' && s.items.maxLength !== undefined && item.length > s.items.maxLength) return fail(`${pyRepr(item)} is too long`, 'maxLength');
    }
  }
  return null;
}
