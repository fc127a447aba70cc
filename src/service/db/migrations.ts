// Versioned, in-code migrations run by kysely's Migrator on start-up. Never edit a
// migration that has shipped; add the next one.
import { Kysely, Migration, MigrationProvider, sql } from 'kysely';

const migrations: Record<string, Migration> = {
  '0001_images': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('images')
        .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)')
        .addColumn('status', 'varchar(30)', (c) => c.notNull())
        .addColumn('visibility', 'varchar(20)', (c) => c.notNull())
        .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('os_hidden', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('checksum', 'varchar(32)')
        .addColumn('os_hash_algo', 'varchar(64)')
        .addColumn('os_hash_value', 'varchar(128)')
        .addColumn('owner', 'varchar(255)')
        .addColumn('size', 'bigint')
        .addColumn('virtual_size', 'bigint')
        .addColumn('min_ram', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('min_disk', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disk_format', 'varchar(20)')
        .addColumn('container_format', 'varchar(20)')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('deleted_at', 'varchar(32)')
        .addColumn('location', 'text')
        .addColumn('staging_size', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('ix_images_deleted_created').on('images').columns(['deleted', 'created_at', 'id']).execute();
      await db.schema.createIndex('ix_images_owner').on('images').columns(['owner']).execute();
      await db.schema.createIndex('ix_images_visibility').on('images').columns(['visibility']).execute();
      await db.schema.createIndex('ix_images_name').on('images').columns(['name']).execute();
      await db.schema.createIndex('ix_images_status').on('images').columns(['status']).execute();

      await db.schema.createTable('image_properties')
        .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('pk_image_properties', ['image_id', 'name'])
        .execute();
      await db.schema.createIndex('ix_image_properties_name_value').on('image_properties').columns(['name', 'image_id']).execute();

      await db.schema.createTable('image_tags')
        .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('value', 'varchar(255)', (c) => c.notNull())
        .addPrimaryKeyConstraint('pk_image_tags', ['image_id', 'value'])
        .execute();
      await db.schema.createIndex('ix_image_tags_value').on('image_tags').columns(['value', 'image_id']).execute();

      await db.schema.createTable('image_members')
        .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('member', 'varchar(255)', (c) => c.notNull())
        .addColumn('status', 'varchar(20)', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .addPrimaryKeyConstraint('pk_image_members', ['image_id', 'member'])
        .execute();
      await db.schema.createIndex('ix_image_members_member').on('image_members').columns(['member', 'status']).execute();
    },
    async down(db: Kysely<any>) {
      for (const t of ['image_members', 'image_tags', 'image_properties', 'images']) await db.schema.dropTable(t).execute();
      void sql;
    },
  },
  '0002_property_value_index': {
    // Property filters (?os_distro=debian) look up by name and value.
    async up(db: Kysely<any>) {
      await db.schema.dropIndex('ix_image_properties_name_value').execute();
      await db.schema.createIndex('ix_image_properties_name_value').on('image_properties').columns(['name', 'value', 'image_id']).execute();
      // Listing pages walk these in sort order from the marker instead of sorting all rows.
      await db.schema.createIndex('ix_images_deleted_name').on('images').columns(['deleted', 'name', 'created_at', 'id']).execute();
      await db.schema.createIndex('ix_images_deleted_updated').on('images').columns(['deleted', 'updated_at', 'id']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('ix_images_deleted_name').execute();
      await db.schema.dropIndex('ix_images_deleted_updated').execute();
      await db.schema.dropIndex('ix_image_properties_name_value').execute();
      await db.schema.createIndex('ix_image_properties_name_value').on('image_properties').columns(['name', 'image_id']).execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() { return migrations; },
};
