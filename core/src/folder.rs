//! Folder checks and file placement, shared by the backup and the restore, on the media a user
//! backs up to (USB sticks with FAT32 or exFAT, NTFS disks, network shares): what an
//! operating-system error means to the user, how a finished archive is put in place without
//! replacing one that exists, and the temporary files of backups that died.
//!
//! * [`check_folder`] checks a `BackupPath` or `RestorePath`.
//! * [`io_error`] is the one mapping of OS errors to the path and media codes (see the table in
//!   `docs/reliability.md`); `STORAGE` is never one of them: it is for the license store.
//! * [`place_new`] puts an archive in place without replacing anything, with the best mechanism
//!   the file system has: `renameat2(RENAME_NOREPLACE)` (Linux), `renamex_np(RENAME_EXCL)`
//!   (Apple), `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING` (Windows); else a hard link;
//!   else (FAT, exFAT and most FUSE file systems) an exclusive-create protocol: an empty
//!   placeholder is created with `O_EXCL` under the folder's lock file and the archive is renamed
//!   over it. A crash inside that protocol leaves an empty `licenses.lbk`, which every reader
//!   treats as "no archive" and the next backup replaces.
//! * [`TempArchive`] is a backup's temporary file, locked for as long as its writer lives;
//!   [`remove_dead_temporaries`] removes those whose lock can be taken (their writer died).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::archive::ARCHIVE_FILE_NAME;
use crate::error::{Error, ErrorCode, Result};

/// Checks that `folder` exists and is a folder.
pub(crate) fn check_folder(folder: &Path) -> Result<()> {
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::new(ErrorCode::NotAFolder, format!("{} is not a folder", folder.display()))),
        Err(e) => Err(match io_error(Doing::Folder(folder), &e) {
            e if e.code() == ErrorCode::PathNotFound => {
                Error::new(ErrorCode::PathNotFound, format!("the folder {} does not exist", folder.display()))
            }
            e if e.code() == ErrorCode::NotAFolder => {
                Error::new(ErrorCode::NotAFolder, format!("{} is not a folder", folder.display()))
            }
            e => e,
        }),
    }
}

/// Flushes a folder's entries to disk (after a file was renamed or linked into it).
pub(crate) fn sync_folder(folder: &Path) {
    // Makes the rename durable; not every platform can open a folder, so this is best effort.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
}

/// What was being done when an OS error happened: the same error means different things to
/// the user for the folder, a file created in it, or the archive.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Doing<'a> {
    /// Looking at the folder named by `BackupPath` or `RestorePath`.
    Folder(&'a Path),
    /// Creating a file in this folder.
    Create(&'a Path),
    /// Writing the archive, syncing it, or putting it in place.
    Write,
    /// Reading the archive.
    Read,
}

impl Doing<'_> {
    fn writes(self) -> bool {
        matches!(self, Doing::Create(_) | Doing::Write)
    }

    fn what(self) -> String {
        match self {
            Doing::Folder(p) => format!("cannot use the folder {}", p.display()),
            Doing::Create(p) => format!("cannot create a file in the folder {}", p.display()),
            Doing::Write => "cannot write the archive".to_string(),
            Doing::Read => "cannot read the archive".to_string(),
        }
    }
}

/// What an OS error is, independent of what was being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    NotFound,
    NotADirectory,
    IsADirectory,
    NameTooLong,
    Denied,
    ReadOnly,
    Full,
    TooLarge,
    Io,
    Gone,
    Other,
}

#[cfg(unix)]
fn cause(e: &io::Error) -> Cause {
    let Some(errno) = e.raw_os_error() else { return cause_of_kind(e.kind()) };
    match errno {
        libc::ENOENT => Cause::NotFound,
        libc::ENOTDIR => Cause::NotADirectory,
        libc::EISDIR => Cause::IsADirectory,
        libc::ENAMETOOLONG | libc::ELOOP => Cause::NameTooLong,
        libc::EACCES | libc::EPERM => Cause::Denied,
        libc::EROFS => Cause::ReadOnly,
        libc::ENOSPC | libc::EDQUOT => Cause::Full,
        libc::EFBIG => Cause::TooLarge,
        libc::EIO => Cause::Io,
        libc::ENOTCONN
        | libc::ECONNABORTED
        | libc::ENODEV
        | libc::ENXIO
        | libc::ESTALE
        | libc::ESHUTDOWN
        | libc::EHOSTDOWN => Cause::Gone,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::ENOMEDIUM => Cause::Gone,
        _ => Cause::Other,
    }
}

#[cfg(windows)]
fn cause(e: &io::Error) -> Cause {
    // Win32 error codes (winerror.h) of removable and network media.
    match e.raw_os_error() {
        Some(2) => Cause::NotFound,                       // ERROR_FILE_NOT_FOUND
        Some(3) => Cause::NotFound,                       // ERROR_PATH_NOT_FOUND
        Some(267) => Cause::NotADirectory,                // ERROR_DIRECTORY
        Some(206) => Cause::NameTooLong,                  // ERROR_FILENAME_EXCED_RANGE
        Some(5) | Some(32) => Cause::Denied,              // ACCESS_DENIED, SHARING_VIOLATION
        Some(19) => Cause::ReadOnly,                      // ERROR_WRITE_PROTECT
        Some(39) | Some(112) | Some(1295) => Cause::Full, // HANDLE_DISK_FULL, DISK_FULL, QUOTA
        Some(223) => Cause::TooLarge,                     // ERROR_FILE_TOO_LARGE
        Some(23) | Some(25) | Some(29) | Some(30) | Some(31) | Some(1117) => Cause::Io, // CRC, SEEK, faults
        Some(21) | Some(55) | Some(64) | Some(1110) | Some(1112) | Some(1167) => Cause::Gone, // NOT_READY, ...
        _ => cause_of_kind(e.kind()),
    }
}

#[cfg(not(any(unix, windows)))]
fn cause(e: &io::Error) -> Cause {
    cause_of_kind(e.kind())
}

fn cause_of_kind(kind: io::ErrorKind) -> Cause {
    match kind {
        io::ErrorKind::NotFound => Cause::NotFound,
        io::ErrorKind::NotADirectory => Cause::NotADirectory,
        io::ErrorKind::IsADirectory => Cause::IsADirectory,
        io::ErrorKind::PermissionDenied => Cause::Denied,
        io::ErrorKind::ReadOnlyFilesystem => Cause::ReadOnly,
        io::ErrorKind::StorageFull => Cause::Full,
        io::ErrorKind::FileTooLarge => Cause::TooLarge,
        io::ErrorKind::NotConnected | io::ErrorKind::StaleNetworkFileHandle => Cause::Gone,
        _ => Cause::Other,
    }
}

/// The one mapping of an OS error to a code, given what was being done.
///
/// | OS error | code |
/// |---|---|
/// | `ENOENT` | `PATH_NOT_FOUND` (the folder, or a file in a folder that is gone); `NOT_WRITABLE` when creating a file in a folder that exists (`/proc`); `ARCHIVE_MISSING` when reading the archive |
/// | `ENOTDIR` | `NOT_A_FOLDER` |
/// | `ENAMETOOLONG`, `ELOOP` | `PATH_INVALID` |
/// | `EACCES`, `EPERM`, `EROFS` | `NOT_WRITABLE` when writing; `NOT_READABLE` when reading |
/// | `ENOSPC`, `EDQUOT`, `EFBIG` | `NO_SPACE` |
/// | `EIO`, and anything else | `MEDIA_FAILURE` |
/// | `ENOTCONN`, `ECONNABORTED`, `ENODEV`, `ENXIO`, `ESTALE`, `ESHUTDOWN`, `EHOSTDOWN`, `ENOMEDIUM` | `DEVICE_GONE` |
pub(crate) fn io_error(doing: Doing<'_>, e: &io::Error) -> Error {
    let what = doing.what();
    let code = match (cause(e), doing) {
        (Cause::NotFound, Doing::Read) => ErrorCode::ArchiveMissing,
        (Cause::NotFound, Doing::Create(folder)) if std::fs::metadata(folder).is_ok_and(|m| m.is_dir()) => {
            // The folder is there but takes no new files (a pseudo file system such as /proc).
            ErrorCode::NotWritable
        }
        (Cause::NotFound, _) => ErrorCode::PathNotFound,
        (Cause::NotADirectory, _) => ErrorCode::NotAFolder,
        (Cause::IsADirectory, Doing::Read) => ErrorCode::WrongFileKind,
        (Cause::IsADirectory, _) => ErrorCode::NotAFolder,
        (Cause::NameTooLong, _) => ErrorCode::PathInvalid,
        (Cause::Denied | Cause::ReadOnly, d) if d.writes() => ErrorCode::NotWritable,
        (Cause::Denied | Cause::ReadOnly, _) => ErrorCode::NotReadable,
        (Cause::Full, _) => ErrorCode::NoSpace,
        (Cause::TooLarge, _) => {
            return Error::new(
                ErrorCode::NoSpace,
                format!(
                    "{what}: the file grew past what this file system allows ({e}); FAT32 holds at most 4 GiB a file"
                ),
            );
        }
        (Cause::Gone, _) => ErrorCode::DeviceGone,
        (Cause::Io | Cause::Other, _) => ErrorCode::MediaFailure,
    };
    Error::new(code, format!("{what}: {e}"))
}

/// Free space under which a refused write is taken for a full medium: more than the archive
/// writer writes at once (a batch of about 128 KiB), which a driver refuses whole.
const NEARLY_FULL: u64 = 1024 * 1024;

/// `NO_SPACE` for a write that was refused (`NOT_WRITABLE`) in a folder whose file system
/// has (nearly) no room left: drivers such as fusefat answer `EPERM` instead of `ENOSPC` when
/// a FAT image cannot take a write.
pub(crate) fn full_or(err: Error, folder: &Path) -> Error {
    if err.code() == ErrorCode::NotWritable && free_bytes(folder).is_some_and(|free| free < NEARLY_FULL) {
        return Error::new(ErrorCode::NoSpace, format!("the device is full ({})", err.message()));
    }
    err
}

/// The bytes an unprivileged writer could still use on `folder`'s file system.
#[cfg(unix)]
fn free_bytes(folder: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(folder.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` is writable memory of the right type.
    if unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    if st.f_flag & libc::ST_RDONLY != 0 {
        return None;
    }
    // The field types differ between platforms (u32 or u64).
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize));
    Some(free)
}

#[cfg(not(unix))]
fn free_bytes(_folder: &Path) -> Option<u64> {
    None
}

/// How [`place_new`] put the archive in place (reported by tests and the docs' table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// An atomic rename that refuses to replace: `renameat2(RENAME_NOREPLACE)`,
    /// `renamex_np(RENAME_EXCL)` or `MoveFileExW` without replace.
    RenameNoReplace,
    /// A hard link to the final name (it fails if the name exists), then the temporary name
    /// removed.
    HardLink,
    /// An empty placeholder created exclusively (`O_EXCL`) under the folder's lock, then the
    /// archive renamed over it.
    Placeholder,
}

/// Whether the atomic no-replace primitives answered "not supported here" (as opposed to a
/// real failure): the file system cannot do it, try the next mechanism.
fn unsupported(e: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(errno) = e.raw_os_error() {
        return matches!(errno, libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM | libc::EMLINK)
            || errno == libc::ENOTSUP;
    }
    #[cfg(windows)]
    if let Some(code) = e.raw_os_error() {
        // ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED, ERROR_INVALID_PARAMETER
        return matches!(code, 1 | 50 | 87);
    }
    e.kind() == io::ErrorKind::Unsupported
}

fn exists_error(target: &Path) -> Error {
    Error::new(
        ErrorCode::BackupExists,
        format!("{} already exists; pass the overwrite flag to replace it", target.display()),
    )
}

/// Renames `from` to `to` atomically unless `to` exists (`AlreadyExists`); an error for which
/// [`unsupported`] holds when this system or file system cannot.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // The system call rather than glibc's wrapper, which glibc before 2.28 lacks.
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Apple platforms: `renamex_np(RENAME_EXCL)` (APFS and HFS+; other file systems answer
/// `ENOTSUP`). Not compiled on the Linux machines this is tested on.
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "watchos"))]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::renamex_np(from.as_ptr(), to.as_ptr(), libc::RENAME_EXCL) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Windows: `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING` fails with
/// `ERROR_ALREADY_EXISTS` when the target exists, on every file system. Not compiled on the
/// Linux machines this is tested on.
#[cfg(windows)]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn MoveFileExW(existing: *const u16, new: *const u16, flags: u32) -> i32;
    }
    const MOVEFILE_WRITE_THROUGH: u32 = 0x8;
    let wide = |p: &Path| p.as_os_str().encode_wide().chain(std::iter::once(0)).collect::<Vec<u16>>();
    let (from, to) = (wide(from), wide(to));
    // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
    let ok = unsafe { MoveFileExW(from.as_ptr(), to.as_ptr(), MOVEFILE_WRITE_THROUGH) };
    if ok != 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // ERROR_FILE_EXISTS, ERROR_ALREADY_EXISTS
    if matches!(e.raw_os_error(), Some(80) | Some(183)) {
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    } else {
        Err(e)
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    windows
)))]
fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether `path` is a placeholder: an empty `licenses.lbk`, what a backup that died inside
/// the exclusive-create protocol leaves. It holds no licenses; readers report it as no archive.
pub(crate) fn is_placeholder(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.len() == 0
}

/// Puts the finished archive `temp` in place as `target` in `folder`, never replacing a file
/// that exists there (`BACKUP_EXISTS`), even one that appeared while the backup ran. A stale
/// placeholder (an empty `licenses.lbk` no live backup holds) is removed first.
pub(crate) fn place_new(temp: &Path, target: &Path, folder: &Path) -> Result<Placement> {
    if std::fs::symlink_metadata(target).is_ok_and(|m| is_placeholder(&m)) {
        let _lock = FolderLock::acquire(folder)?;
        // Under the lock no live backup is between its placeholder and its rename, so an empty
        // archive is one a backup left when it died.
        if std::fs::symlink_metadata(target).is_ok_and(|m| is_placeholder(&m)) {
            std::fs::remove_file(target).map_err(|e| io_error(Doing::Write, &e))?;
        }
    }
    match rename_noreplace(temp, target) {
        Ok(()) => return Ok(Placement::RenameNoReplace),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists_error(target)),
        Err(e) if unsupported(&e) => {}
        Err(e) => return Err(io_error(Doing::Write, &e)),
    }
    match std::fs::hard_link(temp, target) {
        Ok(()) => {
            // The archive is in place; the temporary name is only a second link to it.
            let _ = std::fs::remove_file(temp);
            return Ok(Placement::HardLink);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists_error(target)),
        Err(e) if unsupported(&e) => {}
        Err(e) => return Err(io_error(Doing::Write, &e)),
    }
    let _lock = FolderLock::acquire(folder)?;
    let placeholder = match OpenOptions::new().write(true).create_new(true).open(target) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists_error(target)),
        Err(e) => return Err(io_error(Doing::Write, &e)),
    };
    // The rename replaces only the placeholder made here (another backup would have had to
    // take the lock; a program that does not is caught unless it writes in this instant).
    if !same_file(&placeholder, target) {
        return Err(exists_error(target));
    }
    drop(placeholder);
    std::fs::rename(temp, target).map_err(|e| {
        let _ = std::fs::remove_file(target);
        io_error(Doing::Write, &e)
    })?;
    Ok(Placement::Placeholder)
}

/// Puts `temp` in place as `target`, replacing what is there (the overwrite flag).
pub(crate) fn place_replacing(temp: &Path, target: &Path) -> Result<()> {
    std::fs::rename(temp, target).map_err(|e| io_error(Doing::Write, &e))
}

/// Whether the open `file` is what `path` names now.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Elsewhere files opened here cannot be deleted or replaced while open (no `FILE_SHARE_DELETE`).
#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Takes the exclusive lock of `file` without waiting; `false` if another open file holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}

/// Elsewhere a file opened without sharing is its own lock: opening it succeeded.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Opens (creating if needed) a file that only this process may use while it is open: on
/// Windows no other process may open it for writing or delete it.
fn open_exclusive(path: &Path, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.share_mode(0x1); // FILE_SHARE_READ only
    }
    options.open(path)
}

/// The lock of a backup folder, held by a backup between its placeholder and its rename (and
/// while it removes a stale placeholder): `.licenses.lbk.lock`, removed again on release.
pub(crate) struct FolderLock {
    path: PathBuf,
    file: Option<File>,
}

/// How long a backup waits for another one to finish placing its archive.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl FolderLock {
    fn path(folder: &Path) -> PathBuf {
        folder.join(format!(".{ARCHIVE_FILE_NAME}.lock"))
    }

    /// Takes the folder's lock, waiting up to [`LOCK_WAIT`] (`BUSY` after that).
    pub(crate) fn acquire(folder: &Path) -> Result<FolderLock> {
        let path = FolderLock::path(folder);
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match open_exclusive(&path, false) {
                // A lock file removed by its holder after this opened it is no lock: try again.
                Ok(file) if try_lock(&file).map_err(|e| io_error(Doing::Write, &e))? && same_file(&file, &path) => {
                    return Ok(FolderLock { path, file: Some(file) });
                }
                Ok(_) => {}
                #[cfg(windows)]
                Err(e) if e.raw_os_error() == Some(32) => {} // held by another process
                Err(e) => return Err(io_error(Doing::Create(folder), &e)),
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorCode::Busy,
                    format!("another backup is putting its archive in place in {}", folder.display()),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Removed while still held: a waiter that opened it finds it gone and makes a new one.
        let _ = std::fs::remove_file(&self.path);
        self.file.take();
    }
}

/// The prefix and suffix of a backup's temporary file names: `.licenses.lbk.<random>.tmp`.
fn temp_affixes() -> (String, &'static str) {
    (format!(".{ARCHIVE_FILE_NAME}."), ".tmp")
}

/// A backup's temporary archive: created exclusively, locked for as long as this writer lives
/// (so [`remove_dead_temporaries`] never takes it), removed unless it was put in place.
pub(crate) struct TempArchive {
    pub(crate) path: PathBuf,
    /// Holds the lock (a second handle on the same open file).
    lock: Option<File>,
    keep: bool,
}

impl TempArchive {
    /// Creates and locks a new temporary file in `folder`; returns it with the file to write.
    pub(crate) fn create(folder: &Path) -> Result<(TempArchive, File)> {
        let (prefix, suffix) = temp_affixes();
        loop {
            let name: String = crate::crypto::random_array::<8>().iter().map(|b| format!("{b:02x}")).collect();
            let path = folder.join(format!("{prefix}{name}{suffix}"));
            let file = match open_exclusive(&path, true) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error(Doing::Create(folder), &e)),
            };
            let mut temp = TempArchive { path, lock: None, keep: false };
            if !try_lock(&file).map_err(|e| io_error(Doing::Write, &e))? || !same_file(&file, &temp.path) {
                // Another backup's clean-up took it between its creation and the lock (it then
                // removes it): start again under a new name.
                temp.keep = true;
                continue;
            }
            let writer = file.try_clone().map_err(|e| io_error(Doing::Write, &e))?;
            temp.lock = Some(file);
            return Ok((temp, writer));
        }
    }

    /// Marks the file as put in place: it is no longer removed on drop.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempArchive {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
        self.lock.take();
    }
}

/// Removes the temporary archives (and a stale lock file) in `folder` that no live backup
/// holds: those of backups that died (a crash, a killed process, a pulled stick). Returns how
/// many it removed. Best effort: a file it cannot open or remove stays.
pub(crate) fn remove_dead_temporaries(folder: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else { return 0 };
    let (prefix, suffix) = temp_affixes();
    let lock_name = format!(".{ARCHIVE_FILE_NAME}.lock");
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_temp = name.len() > prefix.len() + suffix.len() && name.starts_with(&prefix) && name.ends_with(suffix);
        if !is_temp && name != lock_name {
            continue;
        }
        let path = entry.path();
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let Ok(file) = open_exclusive(&path, false) else { continue };
        // Removed while holding its lock, and only if the name still is that file.
        if try_lock(&file).unwrap_or(false) && same_file(&file, &path) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The table of `docs/reliability.md`, errno by errno, for each thing being done.
    #[test]
    fn every_errno_maps_to_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path();
        let gone = folder.join("gone");
        let os = |errno| io::Error::from_raw_os_error(errno);
        let all = [Doing::Folder(folder), Doing::Create(folder), Doing::Write, Doing::Read];
        let cases: &[(i32, [ErrorCode; 4])] = &[
            (
                libc::ENOENT,
                [ErrorCode::PathNotFound, ErrorCode::NotWritable, ErrorCode::PathNotFound, ErrorCode::ArchiveMissing],
            ),
            (libc::ENOTDIR, [ErrorCode::NotAFolder; 4]),
            (libc::ENAMETOOLONG, [ErrorCode::PathInvalid; 4]),
            (libc::ELOOP, [ErrorCode::PathInvalid; 4]),
            (
                libc::EACCES,
                [ErrorCode::NotReadable, ErrorCode::NotWritable, ErrorCode::NotWritable, ErrorCode::NotReadable],
            ),
            (
                libc::EPERM,
                [ErrorCode::NotReadable, ErrorCode::NotWritable, ErrorCode::NotWritable, ErrorCode::NotReadable],
            ),
            (
                libc::EROFS,
                [ErrorCode::NotReadable, ErrorCode::NotWritable, ErrorCode::NotWritable, ErrorCode::NotReadable],
            ),
            (libc::ENOSPC, [ErrorCode::NoSpace; 4]),
            (libc::EDQUOT, [ErrorCode::NoSpace; 4]),
            (libc::EFBIG, [ErrorCode::NoSpace; 4]),
            (libc::EIO, [ErrorCode::MediaFailure; 4]),
            (libc::ENOTCONN, [ErrorCode::DeviceGone; 4]),
            (libc::ECONNABORTED, [ErrorCode::DeviceGone; 4]),
            (libc::ENODEV, [ErrorCode::DeviceGone; 4]),
            (libc::ENXIO, [ErrorCode::DeviceGone; 4]),
            (libc::ESTALE, [ErrorCode::DeviceGone; 4]),
            (libc::ENOMEDIUM, [ErrorCode::DeviceGone; 4]),
            (libc::EXDEV, [ErrorCode::MediaFailure; 4]),
        ];
        for (errno, codes) in cases {
            for (doing, want) in all.iter().zip(codes) {
                let err = io_error(*doing, &os(*errno));
                assert_eq!(err.code(), *want, "{doing:?} errno {errno}: {err}");
                assert_ne!(err.code(), ErrorCode::Storage);
                assert!(err.message().contains(&os(*errno).to_string()), "{err}");
            }
        }
        // Creating a file in a folder that is gone is PATH_NOT_FOUND, not NOT_WRITABLE.
        assert_eq!(io_error(Doing::Create(&gone), &os(libc::ENOENT)).code(), ErrorCode::PathNotFound);
    }

    /// On the local file system (whatever mechanism it has): an existing archive is never
    /// replaced, a stale placeholder is, and the lock file does not stay.
    #[test]
    fn place_new_never_replaces_an_archive_but_replaces_a_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(ARCHIVE_FILE_NAME);
        let temp = dir.path().join(".licenses.lbk.00000000000000aa.tmp");
        std::fs::write(&temp, b"LICBAKUP new").unwrap();
        std::fs::write(&target, b"LICBAKUP old").unwrap();
        let err = place_new(&temp, &target, dir.path()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BackupExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"LICBAKUP old");
        std::fs::write(&target, b"").unwrap();
        place_new(&temp, &target, dir.path()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"LICBAKUP new");
        let mut left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.retain(|n| n != ARCHIVE_FILE_NAME);
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_dead_writers_temporary_file_goes_a_live_ones_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (live, mut file) = TempArchive::create(dir.path()).unwrap();
        std::io::Write::write_all(&mut file, b"LICBAKUP").unwrap();
        let dead = dir.path().join(".licenses.lbk.0000000000000000.tmp");
        std::fs::write(&dead, b"left by a crash").unwrap();
        let unrelated = dir.path().join(".licenses.lbk.notes");
        std::fs::write(&unrelated, b"a user's file").unwrap();
        assert_eq!(remove_dead_temporaries(dir.path()), 1);
        assert!(live.path.exists() && !dead.exists() && unrelated.exists());
        let path = live.path.clone();
        drop((live, file));
        assert!(!path.exists(), "an unused temporary file is removed with its writer");
    }
}
