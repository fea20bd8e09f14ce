import { Code, ConnectError } from "@connectrpc/connect";

/** One step of a dialect's schema, applied once, in version order, and recorded in `schema_migrations`. */
export interface Migration<Sql = string> {
  readonly version: number;
  readonly name: string;
  readonly sql: Sql;
}

/** The highest version in an ordered list; checks that versions run 1, 2, 3… so a gap or a reordering fails at once. */
export function latestVersion(migrations: readonly Migration<unknown>[]): number {
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) throw new Error(`migration "${migration.name}" has version ${migration.version}, expected ${index + 1}`);
  });
  return migrations.length;
}

/** A database migrated by a newer passthrough: refused rather than used with a schema this code does not know. */
export function schemaTooNew(applied: number, known: number): ConnectError {
  return new ConnectError(
    `the database's schema is at version ${applied}, newer than this passthrough knows (${known}): upgrade passthrough`,
    Code.FailedPrecondition,
  );
}
