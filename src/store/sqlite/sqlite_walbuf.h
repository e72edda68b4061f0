/*
 * sqlite_walbuf.h — a SQLite VFS that gathers a connection's writes to its
 * -wal file and hands them to the OS in one write per sync.
 *
 * Why: SQLite writes each WAL frame as two calls (a 24-byte header, then
 * the page). A group commit of a few hundred messages spread over 100
 * channels touches ~200 b-tree pages, i.e. ~400 pwrite calls per COMMIT;
 * measured at 50,000 appends/s those calls were about half of the
 * writer thread's commit time. The frames of one transaction are
 * contiguous in the file, so one write of the gathered bytes does the
 * same work with one syscall.
 *
 * Where it is safe, and why only there. Use this VFS only for a
 * connection with PRAGMA synchronous=FULL (the messages writer). At FULL,
 * SQLite syncs the WAL (xSync, which writes the buffer first) before it
 * publishes a commit's frames in the wal-index, so no other connection can
 * be told about frames still sitting in this buffer. At NORMAL it
 * publishes without a sync and readers would look for bytes not yet
 * written. The buffer never holds more than the current transaction.
 *
 * What goes through unchanged: every file other than a -wal file (the
 * base VFS's own file object, with no wrapper), locks, shared memory, and
 * every VFS method other than xOpen. The base is the default VFS at the
 * first registration ("unix"), so locks are shared with connections
 * opened without this VFS (same inode bookkeeping).
 *
 * A write lands in the buffer when it starts inside it or at its end;
 * any other write flushes first. Reads that overlap the buffer, xSync,
 * xTruncate, xFileSize and xClose flush first. A failed flush returns
 * SQLite's I/O error from the call that triggered it (the transaction
 * then fails, nothing is acknowledged) and drops the buffer. Past
 * SQLITE_WALBUF_MAX bytes the buffer is flushed and starts again (a huge
 * transaction costs one write per SQLITE_WALBUF_MAX bytes).
 *
 * sqlite_walbuf_vfs() registers the VFS once (thread-safe) and returns
 * its name for sqlite3_open_v2, or NULL if registration failed (the
 * caller then opens with the default VFS). sqlite_walbuf_flushes() counts
 * the buffer's writes to the OS since start, for tests and benchmarks.
 */
#ifndef STORM_STORE_SQLITE_WALBUF_H
#define STORM_STORE_SQLITE_WALBUF_H

#include <stdint.h>

#define SQLITE_WALBUF_VFS "storm-walbuf"
#define SQLITE_WALBUF_MAX (16u << 20)

const char *sqlite_walbuf_vfs(void);
uint64_t sqlite_walbuf_flushes(void);

#endif
