/** A separate process that appends to a SQLite store (test/store-sqlite.test.ts runs several at once). */
import { openSqliteStore } from '../../src/store/sqlite-store.js';

const [file, name, count] = process.argv.slice(2);
if (!file || !name || !count) throw new Error('usage: store-writer.ts FILE NAME COUNT');
const store = await openSqliteStore(file, { busyTimeoutMs: 20_000 });
for (let i = 0; i < Number(count); i++) {
  await store.appendAudit({ actor: { id: name }, action: 'proc.write', subject: `${name}-${i}` });
}
await store.close();
