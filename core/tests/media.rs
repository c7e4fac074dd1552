//! Real removable media: backups onto FAT32, exFAT and NTFS images and an sshfs share, each
//! mounted through FUSE with Debian's drivers (`fusefat`, `exfat-fuse` on a loop device,
//! `ntfs-3g`, `sshfs` to an `sshd` on loopback), installed by `scripts/fs-tools.sh`.
//!
//! On every file system: a backup without the overwrite flag into an empty folder, again
//! (`BACKUP_EXISTS`, nothing changed), with the flag, a restore, a cancel, a `licenses.lbk`
//! that appears while the backup runs, a stale placeholder and the temporary files of dead and
//! live writers, and a file of another kind under the archive's name. On FAT: a SIGKILL crash
//! sweep (with and without overwrite), a stick that fills up, a stick pulled (the FUSE process
//! killed) during a backup and during a restore, and a read-only mount.
//!
//! These tests need root and FUSE. Where they are missing the tests fail and say why; they are
//! never skipped.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use license_backup::archive::{ARCHIVE_FILE_NAME, RecordReader, read_header_at};
use license_backup::*;

const INSTALL: &str = "scripts/fs-tools.sh (apt-get install -y fusefat dosfstools exfat-fuse exfatprogs ntfs-3g \
                       fuse3 sshfs openssh-server openssh-client), as root";

/// Fails (never skips) when this machine cannot mount images, saying why.
fn require_fuse() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut missing = Vec::new();
    if !root {
        missing.push("root (mounting images needs it)".to_string());
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse (the FUSE device)".to_string());
    }
    for tool in ["fusefat", "mkfs.vfat", "mount.exfat-fuse", "mkfs.exfat", "ntfs-3g", "mkntfs", "sshfs", "sshd"] {
        if !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().any(|d| Path::new(d).join(tool).exists()) {
            missing.push(tool.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "removable-media tests cannot run: missing {}; install with {INSTALL}",
        missing.join(", ")
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_mounted(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.display().to_string();
    info.lines().any(|l| l.split(' ').nth(4) == Some(dir.as_str()))
}

fn wait_mounted(dir: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mounted(dir) {
        assert!(Instant::now() < deadline, "{what} did not mount at {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file system image mounted through FUSE; unmounted (and its loop device detached) on drop.
struct Mount {
    name: &'static str,
    dir: PathBuf,
    /// The FUSE driver, when it runs in the foreground (FAT): killing it pulls the stick.
    daemon: Option<Child>,
    loop_dev: Option<String>,
    sshd: Option<Child>,
    tmp: Option<tempfile::TempDir>,
}

impl Mount {
    fn new_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::Builder::new().prefix("lb-media-").tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let image = tmp.path().join("stick.img");
        (tmp, dir, image)
    }

    fn image(path: &Path, kib: u64) {
        std::fs::File::create(path).unwrap().set_len(kib * 1024).unwrap();
    }

    /// A FAT image of `kib` KiB (FAT32 from 40 MiB up, else what mkfs.vfat picks), mounted by
    /// `fusefat` in the foreground, read-write unless `read_only`.
    fn fat(kib: u64, read_only: bool) -> Mount {
        require_fuse();
        let (tmp, dir, image) = Mount::new_dirs();
        Mount::image(&image, kib);
        let mut mkfs = Command::new("mkfs.vfat");
        if kib >= 40 * 1024 {
            mkfs.arg("-F").arg("32");
        }
        run(mkfs.arg("-n").arg("LBSTICK").arg(&image));
        let daemon = Mount::fusefat(&image, &dir, read_only);
        Mount { name: "FAT (fusefat)", dir, daemon: Some(daemon), loop_dev: None, sshd: None, tmp: Some(tmp) }
    }

    fn fusefat(image: &Path, dir: &Path, read_only: bool) -> Child {
        let mut cmd = Command::new("fusefat");
        cmd.arg("-f");
        cmd.arg("-o").arg(if read_only { "ro" } else { "rw+" });
        let daemon = cmd.arg(image).arg(dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_mounted(dir, "fusefat");
        daemon
    }

    /// Unmounts this FAT image and mounts it again, read-only or not.
    fn remount_fat(&mut self, read_only: bool) {
        run(Command::new("fusermount").arg("-u").arg(&self.dir));
        let mut old = self.daemon.take().expect("a fusefat mount");
        let _ = old.wait();
        let image = self.tmp.as_ref().unwrap().path().join("stick.img");
        self.daemon = Some(Mount::fusefat(&image, &self.dir, read_only));
    }

    /// An exFAT image on a loop device, mounted by `mount.exfat-fuse`.
    fn exfat(kib: u64) -> Mount {
        require_fuse();
        let (tmp, dir, image) = Mount::new_dirs();
        Mount::image(&image, kib);
        run(Command::new("mkfs.exfat").arg(&image));
        let out = Command::new("losetup").arg("-f").arg("--show").arg(&image).output().unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut mount =
            Mount { name: "exFAT (exfat-fuse)", dir, daemon: None, loop_dev: Some(dev), sshd: None, tmp: Some(tmp) };
        run(Command::new("mount.exfat-fuse").arg(mount.loop_dev.as_ref().unwrap()).arg(&mount.dir));
        wait_mounted(&mount.dir, "exfat-fuse");
        mount.name = "exFAT (exfat-fuse)";
        mount
    }

    /// An NTFS image mounted by `ntfs-3g`.
    fn ntfs(kib: u64) -> Mount {
        require_fuse();
        let (tmp, dir, image) = Mount::new_dirs();
        Mount::image(&image, kib);
        run(Command::new("mkntfs").arg("-F").arg("-Q").arg(&image));
        run(Command::new("ntfs-3g").arg(&image).arg(&dir));
        wait_mounted(&dir, "ntfs-3g");
        Mount { name: "NTFS (ntfs-3g)", dir, daemon: None, loop_dev: None, sshd: None, tmp: Some(tmp) }
    }

    /// A network share: a folder served by an `sshd` on 127.0.0.1 (its own keys and port),
    /// mounted by `sshfs`.
    fn sshfs() -> Mount {
        require_fuse();
        let (tmp, dir, _) = Mount::new_dirs();
        let base = tmp.path().to_path_buf();
        let base = base.as_path();
        let share = base.join("share");
        std::fs::create_dir(&share).unwrap();
        for key in ["host", "client"] {
            run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(base.join(key)));
        }
        std::fs::copy(base.join("client.pub"), base.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = base.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {b}/host\nAuthorizedKeysFile {b}/authorized_keys\n\
                 PasswordAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n\
                 Subsystem sftp internal-sftp\nPidFile none\n",
                b = base.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut mount = Mount {
            name: "sshfs (SFTP share on loopback)",
            dir,
            daemon: None,
            loop_dev: None,
            sshd: Some(sshd),
            tmp: Some(tmp),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        run(Command::new("sshfs")
            .arg("-p")
            .arg(port.to_string())
            .arg("-o")
            .arg(format!(
                "IdentityFile={}/client,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes",
                base.display()
            ))
            .arg(format!("root@127.0.0.1:{}", share.display()))
            .arg(&mount.dir));
        wait_mounted(&mount.dir, "sshfs");
        mount.name = "sshfs (SFTP share on loopback)";
        mount
    }

    /// A folder on the mounted file system.
    fn folder(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Pulls the stick: kills the FUSE driver; every access then fails (`ENOTCONN`).
    fn pull(&mut self) {
        let daemon = self.daemon.as_mut().expect("only a foreground driver can be pulled");
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount").arg("-u").arg("-z").arg(&self.dir).stderr(Stdio::null()).status();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).stderr(Stdio::null()).status();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Some(mut d) = self.sshd.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Some(dev) = self.loop_dev.take() {
            // The FUSE driver releases the device shortly after the unmount.
            for _ in 0..50 {
                if Command::new("losetup").arg("-d").arg(&dev).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// What the file system answers to the no-replace primitives: which mechanism a backup uses.
fn placement_on(folder: &Path) -> &'static str {
    use std::os::unix::ffi::OsStrExt;
    let a = folder.join("probe-a");
    let b = folder.join("probe-b");
    std::fs::write(&a, b"a").unwrap();
    let (ca, cb) = (
        std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap(),
        std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap(),
    );
    // SAFETY: two NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    let answer = if rc == 0 {
        "renameat2(RENAME_NOREPLACE)"
    } else if std::fs::hard_link(&a, &b).is_ok() {
        "hard link (renameat2 flags: EINVAL)"
    } else {
        "O_EXCL placeholder + rename (renameat2 flags: EINVAL, link: EPERM)"
    };
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    answer
}

/// The stores and the ledger stay on the local disk; only the archive goes to the medium.
struct Devices {
    dir: tempfile::TempDir,
    service: Arc<EmbeddedService>,
}

impl Devices {
    fn new() -> Devices {
        let dir = tempfile::tempdir().unwrap();
        let service = Arc::new(EmbeddedService::open(dir.path().join("service.db")).unwrap());
        Devices { dir, service }
    }

    fn device(&self, name: &str, folder: &Path) -> (Arc<LicenseStore>, BackupRestorer) {
        let store = Arc::new(LicenseStore::open(self.dir.path().join(format!("{name}.db"))).unwrap());
        let restorer = create_backup_restorer(Arc::clone(&store), self.service.clone());
        let folder = PropertyValue::String(folder.display().to_string());
        restorer.set_property("BackupPath", folder.clone()).unwrap();
        restorer.set_property("RestorePath", folder).unwrap();
        (store, restorer)
    }
}

/// Writes a new file at `path` (fusefat cannot grow a file it truncated: `EPERM`).
fn put(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

/// The names in `folder` other than the archive (temporary files, lock files).
///
/// libfuse hides a file removed while the kernel has not yet told it the file was closed (a
/// killed writer's descriptors are released asynchronously) as `.fuse_hidden*`, and removes
/// it once the release arrives: those must be gone within a few seconds, and are then no
/// litter.
fn litter(folder: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != ARCHIVE_FILE_NAME)
            .collect();
        names.sort();
        if !names.iter().any(|n| n.starts_with(".fuse_hidden")) || Instant::now() >= deadline {
            return names;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The archive's key IDs if it is complete and valid, else `None`.
fn valid_archive(service: &EmbeddedService, path: &Path) -> Option<Vec<KeyId>> {
    let header = read_header_at(path).ok()?;
    let key = service.unwrap_data_key(&header).ok()?;
    let (_, mut reader) = RecordReader::open(path, &key).ok()?;
    let mut ids = Vec::new();
    loop {
        match reader.next_license() {
            Ok(Some(l)) => ids.push(l.license.key_id),
            Ok(None) => return Some(ids),
            Err(_) => return None,
        }
    }
}

/// Runs a backup whose callback calls `at_progress(done)` at every PROGRESS; bounded wait.
fn backup_with(
    r: &BackupRestorer,
    overwrite: bool,
    at_progress: impl Fn(u64, &OperationHandle) + Send + Sync + 'static,
) -> (Result<Summary>, Vec<&'static str>) {
    r.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let slot: Arc<Mutex<Option<OperationHandle>>> = Arc::default();
    let rec = Recorder::default();
    let inner = rec.callback();
    let handle_slot = Arc::clone(&slot);
    let callback: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        if let StatusEvent::Progress { done, .. } = e {
            if let Some(h) = handle_slot.lock().unwrap().as_ref() {
                at_progress(*done, h);
            }
        }
        inner.on_status(e)
    });
    let handle = r.backup_licenses(BackupFlags { overwrite }, callback).unwrap();
    *slot.lock().unwrap() = Some(handle.clone());
    let res = handle.wait_timeout(Duration::from_secs(120)).expect("the backup hangs");
    r.set_property("ProgressInterval", PropertyValue::U32(100)).unwrap();
    (res, rec.kinds())
}

fn code(res: &Result<Summary>) -> ErrorCode {
    res.as_ref().expect_err("the operation succeeded").code()
}

/// The promises every file system must keep.
fn exercise(mount: &Mount, licenses: u32) {
    let folder = mount.folder("Backups");
    let archive = folder.join(ARCHIVE_FILE_NAME);
    let devices = Devices::new();
    let (a, ra) = devices.device("a", &folder);
    fill(&a, licenses, 7);
    let restricted = u64::from(licenses / 7);
    let ids = |s: &LicenseStore| -> Vec<KeyId> {
        s.list_licenses().unwrap().iter().filter(|l| l.rights.backup_allowed).map(|l| l.key_id).collect()
    };
    let name = mount.name;

    // Without the overwrite flag, into an empty folder (the README's first backup).
    let (res, rec) = backup(&ra, false);
    let kinds = rec.kinds();
    let summary = res.unwrap_or_else(|e| panic!("{name}: first backup without overwrite: {e}"));
    assert_eq!(summary.licenses + summary.restricted, u64::from(licenses), "{name}");
    assert_eq!(summary.restricted, restricted);
    assert_eq!(kinds.first(), Some(&"begin"));
    assert_eq!(valid_archive(&devices.service, &archive), Some(ids(&a)), "{name}: the archive holds every license");
    assert_eq!(litter(&folder), Vec::<String>::new(), "{name}: nothing but the archive");
    let first = read_all(&archive);

    // Again without the flag: BACKUP_EXISTS, nothing changed.
    let (res, _) = backup(&ra, false);
    assert_eq!(code(&res), ErrorCode::BackupExists, "{name}");
    assert_eq!(read_all(&archive), first, "{name}: the archive was replaced without the flag");
    assert_eq!(litter(&folder), Vec::<String>::new(), "{name}");

    // With the flag: a new archive.
    let (res, _) = backup(&ra, true);
    res.unwrap_or_else(|e| panic!("{name}: backup with overwrite: {e}"));
    let second = read_all(&archive);
    assert_ne!(second, first, "{name}: a fresh archive (new data key)");
    assert_eq!(valid_archive(&devices.service, &archive), Some(ids(&a)), "{name}");

    // A restore onto another device.
    let (b, rb) = devices.device("b", &folder);
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_or_else(|e| panic!("{name}: restore: {e}")).licenses, licenses as u64 - restricted);
    assert_eq!(b.license_count().unwrap(), licenses as u64 - restricted);
    assert_eq!(b.content_key(&key_id(1)).unwrap(), content_key(1));

    // Cancel midway, with and without the flag: the archive stays, no temporary file.
    for overwrite in [true, false] {
        let (res, kinds) = backup_with(&ra, overwrite, move |done, h| {
            if done == u64::from(licenses / 2) {
                h.cancel();
            }
        });
        if overwrite {
            assert_eq!(code(&res), ErrorCode::Cancelled, "{name}");
            assert_eq!(kinds.last(), Some(&"end"));
        } else {
            assert_eq!(code(&res), ErrorCode::BackupExists, "{name}");
        }
        assert_eq!(read_all(&archive), second, "{name}: a cancelled backup changed the archive");
        assert_eq!(litter(&folder), Vec::<String>::new(), "{name}: a cancelled backup left files");
    }

    // A licenses.lbk that appears while a backup without the flag runs is never replaced.
    std::fs::remove_file(&archive).unwrap();
    let appearing = archive.clone();
    let (res, _) = backup_with(&ra, false, move |done, _| {
        if done == 3 {
            put(&appearing, b"someone else's licenses.lbk");
        }
    });
    assert_eq!(code(&res), ErrorCode::BackupExists, "{name}: an archive appeared during the backup");
    assert_eq!(read_all(&archive), b"someone else's licenses.lbk", "{name}: it was replaced");
    assert_eq!(litter(&folder), Vec::<String>::new(), "{name}");

    // ...nor is a file of another kind replaced with the flag (a store copied there).
    let store_bytes = read_all(a.path());
    put(&archive, &store_bytes);
    let (res, _) = backup(&ra, true);
    assert_eq!(code(&res), ErrorCode::WrongFileKind, "{name}");
    assert_eq!(read_all(&archive), store_bytes, "{name}: a file of another kind was changed");
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(code(&res), ErrorCode::WrongFileKind, "{name}: restore from a store");

    // What a backup that died leaves: an empty placeholder and its temporary file. A live
    // writer's temporary file (locked) stays.
    put(&archive, b"");
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(code(&res), ErrorCode::ArchiveMissing, "{name}: an empty archive is no archive");
    let dead = folder.join(".licenses.lbk.00112233deadbeef.tmp");
    std::fs::write(&dead, b"LICBAKUP half an archive").unwrap();
    let live_path = folder.join(".licenses.lbk.0011223344556677.tmp");
    let live = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&live_path).unwrap();
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor `live` owns.
        assert_eq!(unsafe { libc::flock(live.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0, "{name}: flock");
    }
    let (res, _) = backup(&ra, false);
    res.unwrap_or_else(|e| panic!("{name}: a backup over a stale placeholder: {e}"));
    assert_eq!(valid_archive(&devices.service, &archive), Some(ids(&a)), "{name}");
    assert_eq!(
        litter(&folder),
        vec![".licenses.lbk.0011223344556677.tmp".to_string()],
        "{name}: dead removed, live kept"
    );
    drop(live);
    let (res, _) = backup(&ra, true);
    res.unwrap();
    assert_eq!(litter(&folder), Vec::<String>::new(), "{name}: the writer died: its file goes too");

    println!("{name}: placement without overwrite: {}", placement_on(&folder));
}

#[test]
fn fat32_backup_restore_cancel_and_promises() {
    exercise(&Mount::fat(48 * 1024, false), 300);
}

#[test]
fn exfat_backup_restore_cancel_and_promises() {
    exercise(&Mount::exfat(16 * 1024), 300);
}

#[test]
fn ntfs_backup_restore_cancel_and_promises() {
    exercise(&Mount::ntfs(16 * 1024), 300);
}

#[test]
fn network_share_backup_restore_cancel_and_promises() {
    exercise(&Mount::sshfs(), 300);
}

#[test]
fn a_read_only_stick_is_not_writable_before_any_work() {
    let mut mount = Mount::fat(2048, false);
    let folder = mount.folder("Backups");
    let archive = folder.join(ARCHIVE_FILE_NAME);
    let devices = Devices::new();
    let (a, ra) = devices.device("a", &folder);
    fill(&a, 50, 0);
    backup(&ra, false).0.unwrap();
    let before = read_all(&archive);
    std::fs::remove_file(&archive).unwrap();
    mount.remount_fat(true);
    for overwrite in [false, true] {
        let (res, rec) = backup(&ra, overwrite);
        let kinds = rec.kinds();
        let err = res.expect_err("a backup onto a read-only stick");
        assert_eq!(err.code(), ErrorCode::NotWritable, "{err}");
        assert_eq!(kinds, ["begin", "end"], "no work before NOT_WRITABLE");
    }
    mount.remount_fat(false);
    put(&archive, &before);
    mount.remount_fat(true);
    let (res, _) = backup(&ra, true);
    assert_eq!(code(&res), ErrorCode::NotWritable);
    assert_eq!(read_all(&archive), before);
    // Restoring from a read-only stick works.
    let (b, rb) = devices.device("b", &folder);
    restore(&rb, RestoreFlags::default()).0.unwrap();
    assert_eq!(b.license_count().unwrap(), 50);
}

#[test]
fn a_full_stick_is_no_space_with_the_old_archive_intact() {
    // 1 MiB FAT12: room for a small archive, not for a second, bigger one beside it.
    let mount = Mount::fat(1024, false);
    let folder = mount.folder("Backups");
    let archive = folder.join(ARCHIVE_FILE_NAME);
    let devices = Devices::new();
    let (a, ra) = devices.device("a", &folder);
    fill(&a, 400, 0);
    backup(&ra, false).0.unwrap();
    let old = read_all(&archive);
    let more: Vec<NewLicense> = (401..=9000)
        .map(|i| NewLicense {
            key_id: key_id(i),
            content_key: content_key(i),
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000,
        })
        .collect();
    a.add_licenses(&more, ConflictPolicy::Keep).unwrap();
    let before = snapshot(&a);
    let (res, rec) = backup(&ra, true);
    let kinds = rec.kinds();
    let err = res.expect_err("the stick is too small");
    assert_eq!(err.code(), ErrorCode::NoSpace, "{err}");
    assert_eq!(kinds.last(), Some(&"end"));
    assert_eq!(read_all(&archive), old, "the previous archive is intact");
    assert_eq!(litter(&folder), Vec::<String>::new(), "the temporary file is removed");
    assert_eq!(snapshot(&a), before, "the store is unchanged");
    println!("full stick: {err}");
}

#[test]
fn a_stick_pulled_during_a_backup_is_a_clear_error() {
    let mut mount = Mount::fat(48 * 1024, false);
    let folder = mount.folder("Backups");
    let devices = Devices::new();
    let (a, ra) = devices.device("a", &folder);
    fill(&a, 6000, 0);
    let before = snapshot(&a);
    let daemon_pid = mount.daemon.as_ref().unwrap().id() as i32;
    let (res, kinds) = backup_with(&ra, true, move |done, _| {
        if done == 1000 {
            // SAFETY: kill(2) on the FUSE driver this test started.
            unsafe { libc::kill(daemon_pid, libc::SIGKILL) };
        }
    });
    mount.pull();
    let err = res.expect_err("a backup onto a pulled stick");
    assert_eq!(err.code(), ErrorCode::DeviceGone, "{err}");
    assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 1);
    assert_eq!(snapshot(&a), before, "the store is unchanged");
    assert_eq!(a.verify().unwrap(), 6000);
    println!("stick pulled mid-backup: {err}");
}

#[test]
fn a_stick_pulled_during_a_restore_is_a_clear_error() {
    let mut mount = Mount::fat(48 * 1024, false);
    let folder = mount.folder("Backups");
    let devices = Devices::new();
    let (a, ra) = devices.device("a", &folder);
    fill(&a, 6000, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = devices.device("b", &folder);
    fill(&b, 3, 0);
    let before = snapshot(&b);
    rb.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let daemon_pid = mount.daemon.as_ref().unwrap().id() as i32;
    let archive = folder.join(ARCHIVE_FILE_NAME);
    let rec = Recorder::default();
    let inner = rec.callback();
    let callback: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        if let StatusEvent::Progress { done: 1000, .. } = e {
            // Drop the archive's cached pages first, so the next reads reach the (dead) driver.
            if let Ok(f) = std::fs::File::open(&archive) {
                use std::os::fd::AsRawFd;
                // SAFETY: fadvise on a descriptor `f` owns.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
            // SAFETY: kill(2) on the FUSE driver this test started.
            unsafe { libc::kill(daemon_pid, libc::SIGKILL) };
        }
        inner.on_status(e)
    });
    let handle = rb.restore_licenses(RestoreFlags::default(), callback).unwrap();
    let res = handle.wait_timeout(Duration::from_secs(120)).expect("the restore hangs");
    mount.pull();
    let err = res.expect_err("a restore from a pulled stick");
    assert_eq!(err.code(), ErrorCode::DeviceGone, "{err}");
    assert_eq!(rec.kinds().iter().filter(|k| **k == "end").count(), 1);
    assert_eq!(snapshot(&b), before, "the store is unchanged");
    b.verify().unwrap();
    println!("stick pulled mid-restore: {err}");
}

// ---------------------------------------------------------------------------------------------
// Crash sweep on FAT: the backup runs in a child process (this binary, `media_child`) that is
// SIGKILLed at every event and at timed points of its final window (placeholder, rename).
// ---------------------------------------------------------------------------------------------

const CHILD: &str = "LB_MEDIA_CHILD";
const CHILD_STORE: &str = "LB_MEDIA_STORE";
const CHILD_FOLDER: &str = "LB_MEDIA_FOLDER";
const LOCKSTEP: &str = "LB_MEDIA_LOCKSTEP";

/// The child's side: one backup (`overwrite` or `new`), a line per event, in lockstep mode a
/// wait for the parent's go-ahead after each.
#[test]
fn media_child() {
    let Ok(mode) = std::env::var(CHILD) else { return };
    let store_dir = PathBuf::from(std::env::var(CHILD_STORE).unwrap());
    let lockstep = std::env::var_os(LOCKSTEP).is_some();
    let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(store_dir.join("service.db")).unwrap());
    let store = Arc::new(LicenseStore::open(store_dir.join("a.db")).unwrap());
    let restorer = create_backup_restorer(store, service);
    restorer.set_property("BackupPath", PropertyValue::String(std::env::var(CHILD_FOLDER).unwrap())).unwrap();
    restorer.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let callback: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        let mut out = std::io::stdout().lock();
        match e {
            StatusEvent::Progress { done, total, .. } => writeln!(out, "EV progress {done} {total}"),
            other => writeln!(out, "EV {}", other.kind().name()),
        }
        .and_then(|_| out.flush())
        .unwrap();
        drop(out);
        if lockstep {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
        }
        Ok(())
    });
    let handle = restorer.backup_licenses(BackupFlags { overwrite: mode == "overwrite" }, callback).unwrap();
    let line = match handle.wait() {
        Ok(s) => format!("RESULT ok {}", s.licenses),
        Err(e) => format!("RESULT err {} {}", e.code().name(), e.message()),
    };
    println!("{line}");
    std::process::exit(0);
}

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Running {
    fn start(mode: &str, stores: &Path, folder: &Path, lockstep: bool) -> Running {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        cmd.args(["media_child", "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD, mode)
            .env(CHILD_STORE, stores)
            .env(CHILD_FOLDER, folder)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if lockstep {
            cmd.env(LOCKSTEP, "1");
        }
        let mut child = cmd.spawn().expect("spawn the child");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running { child, stdin, lines }
    }

    fn next(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.ok()?;
            if line.starts_with("EV ") || line.starts_with("RESULT ") {
                return Some(line);
            }
        }
        None
    }

    fn go(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n").and_then(|_| stdin.flush());
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Kill {
    AtEvent(usize),
    AfterLastProgress(Duration),
}

/// Runs the child once under `kill`; returns whether the kill came before the child ended.
fn run_and_kill(mode: &str, stores: &Path, folder: &Path, kill: &Kill, licenses: usize) -> bool {
    let last = format!("EV progress {licenses} {licenses}");
    match *kill {
        Kill::AtEvent(k) => {
            let mut run = Running::start(mode, stores, folder, true);
            let mut seen = 0;
            while let Some(line) = run.next() {
                if line.starts_with("RESULT ") {
                    break;
                }
                seen += 1;
                if seen == k {
                    run.kill();
                    return true;
                }
                run.go();
            }
            run.kill();
            false
        }
        Kill::AfterLastProgress(delay) => {
            let mut run = Running::start(mode, stores, folder, false);
            while let Some(line) = run.next() {
                if line == last {
                    let until = Instant::now() + delay;
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    run.kill();
                    return true;
                }
            }
            run.kill();
            false
        }
    }
}

/// The median time from the last PROGRESS line to END.
fn final_window(mode: &str, stores: &Path, folder: &Path, licenses: usize, reset: &dyn Fn()) -> Duration {
    let last = format!("EV progress {licenses} {licenses}");
    let mut samples = Vec::new();
    for _ in 0..3 {
        reset();
        let mut run = Running::start(mode, stores, folder, false);
        let mut t0 = None;
        while let Some(line) = run.next() {
            if line == last {
                t0 = Some(Instant::now());
            } else if line == "EV end" {
                samples.push(t0.expect("progress before end").elapsed());
            }
        }
        run.child.wait().unwrap();
    }
    samples.sort();
    samples[1]
}

fn crash_points() -> usize {
    std::env::var("LB_MEDIA_CRASH_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

fn remove_all_in(folder: &Path) {
    for e in std::fs::read_dir(folder).unwrap() {
        // A `.fuse_hidden*` file may go by itself meanwhile.
        match std::fs::remove_file(e.unwrap().path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
    }
}

#[test]
fn fat_crash_sweep_keeps_every_promise() {
    let mount = Mount::fat(48 * 1024, false);
    let folder = mount.folder("Backups");
    let archive = folder.join(ARCHIVE_FILE_NAME);
    let devices = Devices::new();
    let stores = devices.dir.path().to_path_buf();
    let total = crash_points();
    let licenses = (total * 3 / 4).max(10) as u32;
    let (a, ra) = devices.device("a", &folder);
    fill(&a, licenses / 2, 0);
    backup(&ra, false).0.unwrap();
    let old = read_all(&archive);
    let more: Vec<NewLicense> = (licenses / 2 + 1..=licenses)
        .map(|i| NewLicense {
            key_id: key_id(i),
            content_key: content_key(i),
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000,
        })
        .collect();
    a.add_licenses(&more, ConflictPolicy::Keep).unwrap();
    let new_ids: Vec<KeyId> = a.list_licenses().unwrap().iter().map(|l| l.key_id).collect();
    let started = Instant::now();
    let mut report = Vec::new();

    for mode in ["new", "overwrite"] {
        let reset = || {
            remove_all_in(&folder);
            if mode == "overwrite" {
                put(&archive, &old);
            }
        };
        let window = final_window(mode, &stores, &folder, licenses as usize, &reset);
        let events = licenses as usize + 2;
        let mut plan: Vec<Kill> = (1..=events).map(Kill::AtEvent).collect();
        // Timed kills: half spread over 0..2.5 windows, half packed around the window's end,
        // where the archive is put in place (placeholder, rename).
        let timed = total.saturating_sub(events).max(40);
        let spread = (0..timed / 2).map(|i| 2.5 * i as f64 / (timed / 2) as f64);
        let packed = (0..timed - timed / 2).map(|i| 0.8 + 0.4 * i as f64 / (timed - timed / 2) as f64);
        plan.extend(spread.chain(packed).map(|f| Kill::AfterLastProgress(window.mul_f64(f))));
        let (mut none, mut placeholder, mut kept_old, mut got_new, mut temps, mut finished) = (0, 0, 0, 0, 0, 0);
        for kill in &plan {
            reset();
            if !run_and_kill(mode, &stores, &folder, kill, licenses as usize) {
                finished += 1;
            }
            // What the kill left.
            match std::fs::read(&archive) {
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                    assert_eq!(mode, "new", "with overwrite an archive is always in place");
                    none += 1;
                }
                Ok(bytes) if bytes.is_empty() => {
                    assert_eq!(mode, "new", "with overwrite the old archive is never replaced by a placeholder");
                    placeholder += 1;
                }
                Ok(bytes) if bytes == old => {
                    assert_eq!(mode, "overwrite");
                    kept_old += 1;
                }
                Ok(_) => {
                    let ids = valid_archive(&devices.service, &archive).expect("the archive in place is damaged");
                    assert_eq!(ids, new_ids, "the new archive holds every license");
                    got_new += 1;
                }
            }
            temps += litter(&folder).iter().filter(|n| n.ends_with(".tmp")).count();
            // The next backup (without the flag) removes what the dead one left and keeps the
            // promise: an archive in place stays, a placeholder is no archive.
            let in_place = std::fs::read(&archive).ok().filter(|b| !b.is_empty());
            let (res, _) = backup(&ra, false);
            match &in_place {
                Some(bytes) => {
                    assert_eq!(code(&res), ErrorCode::BackupExists);
                    assert_eq!(&read_all(&archive), bytes);
                }
                None => {
                    res.unwrap_or_else(|e| panic!("the backup after a kill: {e}"));
                    assert_eq!(valid_archive(&devices.service, &archive), Some(new_ids.clone()));
                }
            }
            assert_eq!(litter(&folder), Vec::<String>::new(), "the next backup removed the dead one's files");
        }
        assert!(got_new > 0, "{mode}: some kills came after the archive was in place");
        report.push(format!(
            "{mode}: {} kill points ({events} at events, {timed} timed over a {window:?} final window, {finished} \
             after the child ended): no archive {none}, placeholder {placeholder}, old archive {kept_old}, new \
             archive {got_new}; temporary files left {temps}, all removed by the next backup",
            plan.len()
        ));
    }
    assert_eq!(a.verify().unwrap(), u64::from(licenses));
    println!("FAT crash sweep ({licenses} licenses), {:?}:\n  {}", started.elapsed(), report.join("\n  "));
}
