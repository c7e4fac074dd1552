//! SQLite helpers shared by the store, the restore and the service's ledger: opening a
//! connection, page-cache sizes, multi-row inserts, and a query stepped through SQLite's C API.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, ErrorCode, Result};

/// Opens a SQLite database (a store or a ledger) the way every connection of this library is
/// opened: WAL journal, full synchronous commits, a 10-second busy timeout, and
/// `secure_delete` (deleted and overwritten content is zeroed in the file, so a removed
/// license's sealed key or a replaced secret does not linger in free space).
pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    open_connection_with(path, None)
}

/// The page size of a store this library creates, in bytes (an existing store keeps the one
/// it was made with). Measured for backup and restore at 4, 8, 16 and 32 KiB
/// (`docs/performance.md`).
pub(crate) const STORE_PAGE_SIZE: u32 = 16384;

/// [`open_connection`], giving a database that does not exist yet `page_size` (SQLite ignores
/// the setting for a database that already has its first table).
pub(crate) fn open_connection_with(path: &Path, page_size: Option<u32>) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| Error::new(ErrorCode::Storage, format!("cannot open license store {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if let Some(size) = page_size {
        // Before the journal mode: a new file's first write (switching to WAL) fixes its page size.
        conn.pragma_update(None, "page_size", size)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| Error::new(ErrorCode::Storage, format!("{} is not a license store: {e}", path.display())))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(conn)
}

/// Copies what the write-ahead log holds back into the database and truncates the log to zero
/// bytes, so old page images (a removed license's row, a replaced secret) do not linger in it.
/// Best effort: it does not wait, and does nothing while another connection reads an older
/// snapshot (the next removal or the last close does it).
pub(crate) fn truncate_wal(conn: &Connection) {
    let _ = conn.busy_timeout(Duration::ZERO);
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
}

/// Turns off SQLite's automatic checkpoint on `conn`: a commit then leaves its pages in the
/// write-ahead log (durable there once the commit returns) for a [`Checkpointer`] or the
/// store's own connection to copy back later. For the connections of a restore, whose one big
/// commit would otherwise copy every page it wrote into the database before the restore ends.
pub(crate) fn no_autocheckpoint(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

/// Has the kernel start writing a database's write-ahead log to disk while a long transaction
/// still adds to it, so that the commit's fsync finds little left to write: at 1M licenses a
/// restore's commit waited ~0.1 s for its 160 MB log to reach the disk, which can be written
/// while the transaction still runs (`docs/performance.md`, eighth round). Linux's
/// `sync_file_range` (it only schedules the writes); elsewhere nothing. Durability is unchanged:
/// it still comes from the commit's fsync, and frames on disk without their commit are ignored
/// by SQLite's recovery. The log is opened a second time, read-only: SQLite takes no lock on
/// the log file (its locks are on the database and the `-shm` file), so closing this descriptor
/// releases none of them.
pub(crate) struct LogWriteback {
    #[cfg(target_os = "linux")]
    log: Option<std::fs::File>,
    /// Calls of [`LogWriteback::wrote`] between two requests.
    every: u32,
    calls: u32,
}

impl LogWriteback {
    /// For the log of the database at `db` (open in WAL mode), a request every `every` calls
    /// of [`LogWriteback::wrote`]. With no log file there it does nothing.
    pub(crate) fn new(db: &Path, every: u32) -> Self {
        #[cfg(target_os = "linux")]
        let log = std::fs::File::open(crate::file_kind::log_path(db)).ok();
        #[cfg(not(target_os = "linux"))]
        let _ = db;
        LogWriteback {
            #[cfg(target_os = "linux")]
            log,
            every: every.max(1),
            calls: 0,
        }
    }

    /// Called after each batch of rows written: every `every` calls, asks the kernel to start
    /// writing the log's dirty pages (it does not wait for them). Returns whether it asked and
    /// the kernel took the request.
    pub(crate) fn wrote(&mut self) -> bool {
        self.calls += 1;
        if self.calls < self.every {
            return false;
        }
        self.calls = 0;
        #[cfg(target_os = "linux")]
        if let Some(log) = &self.log {
            use std::os::fd::AsRawFd;
            // SAFETY: `log` is an open file; the call only schedules the writing of its pages.
            return unsafe { libc::sync_file_range(log.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) } == 0;
        }
        false
    }
}

/// Copies a store's write-ahead log back into the database on a thread of its own, after the
/// operation that wrote it has ended (a restore's commit is durable once the log is synced;
/// copying it is not part of the restore). One at a time per store; [`Checkpointer::wait`]
/// (called when the store is closed) waits for the one running.
///
/// A crash during the copy loses nothing: the log stays valid until SQLite has copied and
/// synced every page it holds, and the next connection to open the store reads it.
#[derive(Default)]
pub(crate) struct Checkpointer {
    running: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts copying the log of the database at `path` back into it, unless a copy is still
    /// running (the next start, or the store's close, copies what it leaves). Best effort: a
    /// reader holding an older snapshot keeps the frames it needs in the log, and a failure
    /// changes nothing.
    pub(crate) fn start(&self, path: &Path) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = running.take() {
            if !previous.is_finished() {
                *running = Some(previous);
                return;
            }
            let _ = previous.join();
        }
        let path = path.to_path_buf();
        let spawned = std::thread::Builder::new().name("license-checkpoint".into()).spawn(move || {
            // An existing database only: if the file was removed meanwhile, nothing is created.
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if let Ok(conn) = Connection::open_with_flags(&path, flags) {
                // Everything it can without waiting for (or blocking) anyone, then the log
                // truncated if no reader needs it any more.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                truncate_wal(&conn);
            }
        });
        *running = spawned.ok();
    }

    /// [`Checkpointer::start`] when the log of the database at `path` holds more than
    /// `threshold` bytes.
    pub(crate) fn start_beyond(&self, path: &Path, threshold: u64) {
        if std::fs::metadata(crate::file_kind::log_path(path)).is_ok_and(|m| m.len() > threshold) {
            self.start(path);
        }
    }

    /// Waits for the checkpoint running, if any.
    pub(crate) fn wait(&self) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(running) = running {
            let _ = running.join();
        }
    }
}

/// The page size of the database at `path` (tests).
#[cfg(test)]
pub(crate) fn page_size(path: &Path) -> i64 {
    Connection::open(path).unwrap().pragma_query_value(None, "page_size", |r| r.get(0)).unwrap()
}

/// Makes an empty WAL-mode database at `path` with pages of `size` bytes: a file as an earlier
/// version made it (tests).
#[cfg(test)]
pub(crate) fn create_with_page_size(path: &Path, size: u32) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "page_size", size).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
}

/// How long a connection waits for another one's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection a backup reads the store through: read-only work, so its page cache is
/// kept small. A backup reads each page once, in key order (the licenses and the catalog side
/// by side), so a large cache holds nothing it reads again and only makes memory grow with
/// the store.
pub(crate) fn open_backup_connection(path: &Path) -> Result<Connection> {
    crate::file_kind::check(path, crate::file_kind::FileKind::Store)?;
    let conn = open_connection(path)?;
    conn.pragma_update(None, "cache_size", BACKUP_CACHE_KIB)?;
    Ok(conn)
}

/// The page cache of a backup's connection: a negative `cache_size` is in KiB.
const BACKUP_CACHE_KIB: i64 = -256;

/// Rows per multi-row `INSERT` statement when a restore writes the store (one statement for
/// many rows costs far less than one per row). Each statement inside the restore's transaction
/// keeps a statement journal of the pages it changes (SQLite copies a page the first time a
/// statement changes it), so longer statements copy fewer pages: 512 rows (7,168 values) took
/// the apply pass of a 1M restore from ~0.8 to ~0.6 s against 64 (`docs/performance.md`).
pub(crate) const ROWS_PER_INSERT: usize = 512;

/// `VALUES (?, ?, ...), (...)`: `rows` groups of `columns` placeholders.
pub(crate) fn values_placeholders(columns: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    vec![group; rows].join(", ")
}

/// Inserts `items` with `many` (a statement of [`ROWS_PER_INSERT`] rows of `columns` values)
/// and `one` (a single row) for the rest; `bind(binder, first, item)` binds an item's values at
/// parameters `first..first + columns`. Returns the rows inserted.
pub(crate) fn insert_chunked<'a, T>(
    many: &mut RawInsert<'_>,
    one: &mut RawInsert<'_>,
    columns: usize,
    items: &'a [T],
    mut bind: impl FnMut(&mut Binder<'a>, usize, &'a T),
) -> Result<usize> {
    let mut inserted = 0;
    let mut chunks = items.chunks_exact(ROWS_PER_INSERT);
    for chunk in &mut chunks {
        inserted += many.execute(|b| {
            for (i, item) in chunk.iter().enumerate() {
                bind(b, 1 + i * columns, item);
            }
        })?;
    }
    for item in chunks.remainder() {
        inserted += one.execute(|b| bind(b, 1, item))?;
    }
    Ok(inserted)
}

/// An `INSERT` prepared through SQLite's C API, whose text and blob values are bound without a
/// copy (`SQLITE_STATIC`): a restore binds ~5 strings and blobs a license, and rusqlite's binds
/// copy each one into a fresh allocation (`SQLITE_TRANSIENT`), ~7% of a 1M restore's CPU.
/// Values are bound inside [`RawInsert::execute`], which steps the statement and clears every
/// binding before it returns, so no pointer outlives the values it points to.
pub(crate) struct RawInsert<'c> {
    stmt: *mut rusqlite::ffi::sqlite3_stmt,
    db: *mut rusqlite::ffi::sqlite3,
    _conn: std::marker::PhantomData<&'c Connection>,
}

/// Binds the values of one [`RawInsert::execute`]; each value must live for `'a`, which
/// outlasts the call. The first error is kept and reported by `execute`.
pub(crate) struct Binder<'a> {
    stmt: *mut rusqlite::ffi::sqlite3_stmt,
    rc: std::os::raw::c_int,
    _values: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Binder<'a> {
    fn check(&mut self, rc: std::os::raw::c_int) {
        if self.rc == rusqlite::ffi::SQLITE_OK {
            self.rc = rc;
        }
    }

    /// Binds `value` to parameter `i` (from 1) as a BLOB.
    pub(crate) fn blob(&mut self, i: usize, value: &'a [u8]) {
        let Ok(len) = std::os::raw::c_int::try_from(value.len()) else {
            return self.check(rusqlite::ffi::SQLITE_TOOBIG);
        };
        // SAFETY: `stmt` is a prepared statement of a borrowed connection; `value` lives for
        // `'a`, longer than the `execute` call that steps the statement and clears this binding
        // (`SQLITE_STATIC`: SQLite reads it in place until then).
        let rc = unsafe {
            rusqlite::ffi::sqlite3_bind_blob(
                self.stmt,
                i as std::os::raw::c_int,
                value.as_ptr().cast(),
                len,
                rusqlite::ffi::SQLITE_STATIC(),
            )
        };
        self.check(rc);
    }

    /// Binds `value` to parameter `i` as TEXT, or NULL.
    pub(crate) fn text(&mut self, i: usize, value: Option<&'a str>) {
        let Some(value) = value else { return self.null(i) };
        let Ok(len) = std::os::raw::c_int::try_from(value.len()) else {
            return self.check(rusqlite::ffi::SQLITE_TOOBIG);
        };
        // SAFETY: as in `blob`; a `str` is UTF-8, as `sqlite3_bind_text` expects.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_bind_text(
                self.stmt,
                i as std::os::raw::c_int,
                value.as_ptr().cast(),
                len,
                rusqlite::ffi::SQLITE_STATIC(),
            )
        };
        self.check(rc);
    }

    /// Binds `value` to parameter `i` as an INTEGER, or NULL.
    pub(crate) fn int(&mut self, i: usize, value: Option<i64>) {
        let Some(value) = value else { return self.null(i) };
        // SAFETY: `stmt` is a prepared statement of a borrowed connection.
        let rc = unsafe { rusqlite::ffi::sqlite3_bind_int64(self.stmt, i as std::os::raw::c_int, value) };
        self.check(rc);
    }

    fn null(&mut self, i: usize) {
        // SAFETY: as in `int`.
        let rc = unsafe { rusqlite::ffi::sqlite3_bind_null(self.stmt, i as std::os::raw::c_int) };
        self.check(rc);
    }
}

impl<'c> RawInsert<'c> {
    /// Prepares `sql` (one statement that returns no rows) on `conn`.
    pub(crate) fn prepare(conn: &'c Connection, sql: &str) -> Result<Self> {
        let (stmt, db) = raw_prepare(conn, sql)?;
        Ok(RawInsert { stmt, db, _conn: std::marker::PhantomData })
    }

    /// Binds the statement's values with `bind`, runs it, and clears the bindings (also on an
    /// error). Returns the rows it changed.
    pub(crate) fn execute<'a>(&mut self, bind: impl FnOnce(&mut Binder<'a>)) -> Result<usize> {
        use rusqlite::ffi;
        let mut binder = Binder { stmt: self.stmt, rc: ffi::SQLITE_OK, _values: std::marker::PhantomData };
        bind(&mut binder);
        // SAFETY: `stmt` is a prepared statement of the borrowed connection `db`; every pointer
        // bound by `binder` is valid for `'a`, which outlives this call, and the bindings are
        // cleared (and the statement reset) before it returns.
        unsafe {
            let rc = if binder.rc == ffi::SQLITE_OK { ffi::sqlite3_step(self.stmt) } else { binder.rc };
            let result = if rc == ffi::SQLITE_DONE {
                Ok(ffi::sqlite3_changes(self.db) as usize)
            } else {
                Err(raw_error(self.db, rc))
            };
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
            result
        }
    }
}

impl RawInsert<'_> {
    /// The same statement, no longer tied to a borrow of its connection: for an owner that
    /// keeps it beside the connection across calls (a ledger transaction's insert).
    ///
    /// # Safety
    /// The result must be dropped before its connection is closed, and used only while its
    /// owner has the connection to itself.
    pub(crate) unsafe fn detach(self) -> RawInsert<'static> {
        let detached = RawInsert { stmt: self.stmt, db: self.db, _conn: std::marker::PhantomData };
        std::mem::forget(self);
        detached
    }
}

impl Drop for RawInsert<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` was prepared by `prepare` and is finalized once, here.
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// A query stepped through SQLite's C API directly, for the backup's scan: reading a column
/// through rusqlite costs three to four calls into SQLite (its type, its value, its length,
/// and rusqlite's checks around them) where the scan needs one or two, and the scan reads
/// fourteen columns a license (callgrind: ~2,300 of the ~6,100 instructions a license of the
/// reading thread were in those calls). Values are borrowed until the next [`RawRows::step`].
pub(crate) struct RawRows<'c> {
    stmt: *mut rusqlite::ffi::sqlite3_stmt,
    db: *mut rusqlite::ffi::sqlite3,
    _conn: std::marker::PhantomData<&'c Connection>,
}

impl<'c> RawRows<'c> {
    /// Prepares `sql` (one statement, no parameters) on `conn`.
    pub(crate) fn prepare(conn: &'c Connection, sql: &str) -> Result<Self> {
        let (stmt, db) = raw_prepare(conn, sql)?;
        Ok(RawRows { stmt, db, _conn: std::marker::PhantomData })
    }

    /// Moves to the next row: `false` past the last one.
    pub(crate) fn step(&mut self) -> Result<bool> {
        use rusqlite::ffi;
        // SAFETY: `stmt` is a prepared statement of a connection still borrowed (`'c`), and no
        // value borrowed from the previous row outlives this `&mut self` call.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(raw_error(self.db, rc)),
        }
    }

    pub(crate) fn is_null(&self, i: i32) -> bool {
        // SAFETY: `stmt` is valid and on a row (only called between a `step` that returned
        // true and the next); an index out of range reads as NULL.
        unsafe { rusqlite::ffi::sqlite3_column_type(self.stmt, i) == rusqlite::ffi::SQLITE_NULL }
    }

    pub(crate) fn int(&self, i: i32) -> i64 {
        // SAFETY: as in `is_null`.
        unsafe { rusqlite::ffi::sqlite3_column_int64(self.stmt, i) }
    }

    pub(crate) fn opt_int(&self, i: i32) -> Option<i64> {
        (!self.is_null(i)).then(|| self.int(i))
    }

    /// The column's bytes (a BLOB, or the UTF-8 of a TEXT), empty for NULL.
    pub(crate) fn bytes(&self, i: i32) -> &[u8] {
        // SAFETY: as in `is_null`. `sqlite3_column_blob` then `sqlite3_column_bytes` is the
        // documented order; the pointer stays valid until the statement is stepped, reset or
        // finalized, which needs `&mut self`, so the slice cannot outlive it.
        unsafe {
            let ptr = rusqlite::ffi::sqlite3_column_blob(self.stmt, i);
            let len = rusqlite::ffi::sqlite3_column_bytes(self.stmt, i);
            if ptr.is_null() || len <= 0 { &[] } else { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }
        }
    }

    pub(crate) fn text(&self, i: i32) -> Result<&str> {
        std::str::from_utf8(self.bytes(i)).map_err(|_| Error::new(ErrorCode::Storage, "text in the store is not UTF-8"))
    }

    pub(crate) fn opt_text(&self, i: i32) -> Result<Option<&str>> {
        if self.is_null(i) { Ok(None) } else { self.text(i).map(Some) }
    }
}

impl Drop for RawRows<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` was prepared by `prepare` and is finalized once, here.
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// The error SQLite reports for `rc` on `db`, as rusqlite would make it.
/// Prepares `sql` (one statement) on `conn` through SQLite's C API: the statement and its
/// database handle, for [`RawInsert`] and [`RawRows`], which finalize the statement on drop.
fn raw_prepare(
    conn: &Connection,
    sql: &str,
) -> Result<(*mut rusqlite::ffi::sqlite3_stmt, *mut rusqlite::ffi::sqlite3)> {
    use rusqlite::ffi;
    // SAFETY: the handle is `conn`'s open database, used on this thread only while `conn` is
    // borrowed (the callers tie their statement to that borrow); `sql` is passed with its
    // length, so it needs no NUL.
    unsafe {
        let db = conn.handle();
        let mut stmt = std::ptr::null_mut();
        let rc = ffi::sqlite3_prepare_v2(
            db,
            sql.as_ptr().cast(),
            sql.len() as std::os::raw::c_int,
            &mut stmt,
            std::ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Err(raw_error(db, rc));
        }
        Ok((stmt, db))
    }
}

fn raw_error(db: *mut rusqlite::ffi::sqlite3, rc: std::os::raw::c_int) -> Error {
    // SAFETY: `db` is an open connection; `sqlite3_errmsg` returns a NUL-terminated string
    // SQLite owns, copied here before any other call on `db`.
    let message = unsafe { std::ffi::CStr::from_ptr(rusqlite::ffi::sqlite3_errmsg(db)) }.to_string_lossy().into_owned();
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), Some(message)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_insert_binds_in_place_clears_its_bindings_and_reports_errors() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a BLOB, b TEXT, c INTEGER, d INTEGER NOT NULL DEFAULT 0)").unwrap();
        let mut two = RawInsert::prepare(&conn, "INSERT INTO t (a, b, c) VALUES (?, ?, ?), (?, ?, ?)").unwrap();
        let (blob, text) = (vec![1u8, 2, 3], String::from("title é"));
        let n = two
            .execute(|b| {
                b.blob(1, &blob);
                b.text(2, Some(&text));
                b.int(3, Some(-7));
                b.blob(4, &[]);
                b.text(5, None);
                b.int(6, None);
            })
            .unwrap();
        assert_eq!(n, 2);
        // Nothing bound: every binding was cleared, so the rows are NULLs, not the old values.
        assert_eq!(two.execute(|_| {}).unwrap(), 2);
        type Row = (Option<Vec<u8>>, Option<String>, Option<i64>);
        let rows: Vec<Row> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (Some(blob.clone()), Some(text.clone()), Some(-7)),
                (Some(vec![]), None, None),
                (None, None, None),
                (None, None, None)
            ]
        );
        // A failing statement reports SQLite's error and stays usable.
        let mut bad = RawInsert::prepare(&conn, "INSERT INTO t (a, d) VALUES (?, ?)").unwrap();
        let e = bad.execute(|b| b.int(2, None)).unwrap_err();
        assert!(e.message().contains("NOT NULL"), "{e}");
        assert_eq!(bad.execute(|b| b.int(2, Some(1))).unwrap(), 1);
        assert!(RawInsert::prepare(&conn, "INSERT INTO nowhere VALUES (?)").is_err());
    }

    /// The database `db` in `dir`, its commits left in its log, with a table `t (x BLOB)`.
    fn logged_table(dir: &Path) -> (std::path::PathBuf, Connection) {
        logged_table_named(dir, std::ffi::OsStr::new("db"))
    }

    fn logged_table_named(dir: &Path, name: &std::ffi::OsStr) -> (std::path::PathBuf, Connection) {
        let path = dir.join(name);
        let conn = open_connection(&path).unwrap();
        no_autocheckpoint(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        (path, conn)
    }

    #[test]
    fn log_writeback_asks_every_n_writes_and_commits_nothing_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = logged_table(dir.path());
        // A small page cache: the transaction's pages go to the log while it runs, as a
        // restore's do.
        conn.execute_batch("PRAGMA cache_size = 16; BEGIN IMMEDIATE").unwrap();
        let mut writeback = LogWriteback::new(&path, 3);
        let mut asked = Vec::new();
        for _ in 0..7 {
            for _ in 0..200 {
                conn.execute("INSERT INTO t VALUES (zeroblob(1000))", []).unwrap();
            }
            asked.push(writeback.wrote());
        }
        // The kernel took a request for the log on every third call (on Linux; elsewhere none).
        let linux = cfg!(target_os = "linux");
        assert_eq!(asked, [false, false, linux, false, false, linux, false]);
        assert!(std::fs::metadata(dir.path().join("db-wal")).unwrap().len() > 1 << 20, "rows went to the log");
        // What the files hold before the commit (what a power cut could leave): none of its rows.
        let copy = dir.path().join("copy");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(dir.path().join("db-wal"), dir.path().join("copy-wal")).unwrap();
        let rows =
            |p: &Path| Connection::open(p).unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0));
        assert_eq!(rows(&copy).unwrap(), 0);
        assert_eq!(rows(&path).unwrap(), 0, "another connection sees nothing before the commit");
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(rows(&path).unwrap(), 1400);
        // A database with no log file: nothing to ask for.
        assert!(!LogWriteback::new(&dir.path().join("absent"), 1).wrote());
    }

    #[test]
    fn the_checkpointer_copies_the_log_back_and_truncates_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = logged_table(dir.path());
        for _ in 0..2000 {
            conn.execute("INSERT INTO t VALUES (zeroblob(1000))", []).unwrap();
        }
        let log = dir.path().join("db-wal");
        assert!(std::fs::metadata(&log).unwrap().len() > 1 << 20, "the commits stayed in the log");
        let checkpointer = Checkpointer::default();
        checkpointer.start(&path);
        checkpointer.wait();
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "the log is truncated");
        assert!(std::fs::metadata(&path).unwrap().len() > 2_000_000, "the pages are in the file");
        let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2000);
    }

    #[cfg(unix)]
    #[test]
    fn a_database_whose_name_is_not_utf8_has_its_log_found() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = logged_table_named(dir.path(), std::ffi::OsStr::from_bytes(b"licenses-\xff.db"));
        conn.execute_batch("PRAGMA cache_size = 16; BEGIN IMMEDIATE").unwrap();
        for _ in 0..2000 {
            conn.execute("INSERT INTO t VALUES (zeroblob(1000))", []).unwrap();
        }
        // The log beside it, not one named after a lossy rendering of its name.
        let log = crate::file_kind::log_path(&path);
        assert_eq!(log, dir.path().join(std::ffi::OsStr::from_bytes(b"licenses-\xff.db-wal")));
        assert_eq!(LogWriteback::new(&path, 1).wrote(), cfg!(target_os = "linux"));
        conn.execute_batch("COMMIT").unwrap();
        assert!(std::fs::metadata(&log).unwrap().len() > 1 << 20);
        let checkpointer = Checkpointer::default();
        checkpointer.start_beyond(&path, 1 << 20);
        checkpointer.wait();
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "the checkpoint found the log and truncated it");
    }

    #[test]
    fn a_checkpoint_of_a_file_removed_meanwhile_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.db");
        let checkpointer = Checkpointer::default();
        checkpointer.start(&path);
        checkpointer.wait();
        assert!(!path.exists());
    }
}
