//! `license-backup` on a terminal: a pseudo-terminal (the kernel's, opened here) as its
//! controlling terminal, as a user's shell would give it. The progress bar is drawn there, in
//! colour unless NO_COLOR is set, and not at all when the output is not a terminal; Ctrl-C
//! typed on the terminal cancels cleanly.
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use license_backup::archive::ARCHIVE_FILE_NAME;
use license_backup::{CatalogEntry, LicenseStore};

/// Everything the terminal received, and whether the last writer has gone.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

/// A pseudo-terminal: the master side, read by a thread into a [`Screen`].
struct Pty {
    master: File,
    screen: Arc<(Mutex<Screen>, Condvar)>,
}

fn check(rc: libc::c_int, what: &str) -> libc::c_int {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
    rc
}

impl Pty {
    /// Opens a pseudo-terminal of 100 columns and 30 rows; returns it and its slave side.
    fn open() -> (Pty, OwnedFd) {
        // SAFETY: plain libc calls on descriptors this function owns; the name buffer is large
        // enough and NUL-terminated by ptsname_r.
        unsafe {
            let master = check(libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC), "posix_openpt");
            let master = File::from_raw_fd(master);
            check(libc::grantpt(master.as_raw_fd()), "grantpt");
            check(libc::unlockpt(master.as_raw_fd()), "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()), 0, "ptsname_r");
            let slave = check(libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC), "open pts");
            let slave = OwnedFd::from_raw_fd(slave);
            let size = libc::winsize { ws_row: 30, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
            check(libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &size), "TIOCSWINSZ");
            let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
            let (mut reader, sink) = (master.try_clone().unwrap(), Arc::clone(&screen));
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    // EIO once every slave descriptor is closed: the terminal is gone.
                    let n = reader.read(&mut buf).unwrap_or(0);
                    let (lock, changed) = &*sink;
                    let mut s = lock.lock().unwrap();
                    s.bytes.extend_from_slice(&buf[..n]);
                    s.closed = n == 0;
                    changed.notify_all();
                    if n == 0 {
                        return;
                    }
                }
            });
            (Pty { master, screen }, slave)
        }
    }

    /// Starts `cmd` in a session of its own with this terminal as its controlling terminal and
    /// as its stdin and stderr (and stdout, unless the caller set it).
    fn spawn(&self, mut cmd: Command, slave: OwnedFd, stdout_too: bool) -> Child {
        cmd.stdin(Stdio::from(slave.try_clone().unwrap())).stderr(Stdio::from(slave.try_clone().unwrap()));
        if stdout_too {
            cmd.stdout(Stdio::from(slave.try_clone().unwrap()));
        }
        cmd.env("TERM", "xterm-256color");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // Only the child holds the terminal now: its exit closes it.
        drop(cmd);
        drop(slave);
        child
    }

    /// Waits until the terminal received `text`; returns everything received.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        let (lock, changed) = &*self.screen;
        let mut s = lock.lock().unwrap();
        loop {
            let seen = String::from_utf8_lossy(&s.bytes).into_owned();
            if seen.contains(text) {
                return seen;
            }
            assert!(!s.closed && Instant::now() < deadline, "the terminal never showed {text:?}; it showed:\n{seen}");
            s = changed.wait_timeout(s, Duration::from_millis(200)).unwrap().0;
        }
    }

    /// Waits until the terminal is closed (the child exited); returns everything received.
    fn wait_closed(&self) -> String {
        let (lock, changed) = &*self.screen;
        let s = changed.wait_while(lock.lock().unwrap(), |s| !s.closed).unwrap();
        String::from_utf8_lossy(&s.bytes).into_owned()
    }

    /// Types on the terminal.
    fn type_bytes(&self, bytes: &[u8]) {
        (&self.master).write_all(bytes).unwrap();
    }
}

/// A colour or weight escape sequence (SGR), as opposed to cursor movement.
fn has_sgr(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|rest| {
        let params: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == ';').collect();
        rest[params.len()..].starts_with('m')
    })
}

/// A world with a store of `n` licenses, license 1000 restricted and titled, and a backup
/// folder.
fn world(n: u32) -> World {
    let w = World::new();
    let a = w.store("a", n, 1000, false);
    LicenseStore::open(a).unwrap().set_catalog_entry(&key_id(1000), &CatalogEntry::titled("Heroes")).unwrap();
    w.folder("usb");
    w
}

#[test]
fn a_terminal_shows_a_progress_bar_with_counts_rate_and_colours() {
    let w = world(3000);
    let (pty, slave) = Pty::open();
    let mut child = pty.spawn(w.cmd(&["backup", "--store", "a.db", "--to", "usb"]), slave, true);
    let screen = pty.wait_closed();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{screen}");
    assert!(screen.contains("3,000/3,000 licenses"), "the bar with its counts: {screen:?}");
    assert!(screen.contains(" licenses/s"), "the rate: {screen:?}");
    assert!(screen.contains("\x1b[1mbackup\x1b[0m ["), "the bar's label: {screen:?}");
    assert!(screen.contains("\x1b[36m===="), "the bar in colour: {screen:?}");
    assert!(screen.contains("\x1b[2K"), "redrawn in place: {screen:?}");
    let restricted = format!("\x1b[33mRESTRICTED_LICENSE\x1b[0m {} \"Heroes\" may not be backed up", key_id(1000));
    assert!(screen.contains(&restricted), "the restricted license, above the bar: {screen:?}");
    assert!(screen.contains("\x1b[32mbacked up 2,997 licenses to usb/licenses.lbk ("), "{screen:?}");
}

#[test]
fn no_color_keeps_the_bar_and_drops_the_colours() {
    let w = world(3000);
    let (pty, slave) = Pty::open();
    let mut cmd = w.cmd(&["backup", "--store", "a.db", "--to", "usb"]);
    cmd.env("NO_COLOR", "1");
    let mut child = pty.spawn(cmd, slave, true);
    let screen = pty.wait_closed();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{screen}");
    assert!(screen.contains("backup [") && screen.contains("3,000/3,000 licenses"), "{screen:?}");
    assert!(!has_sgr(&screen), "no colour or weight at all: {screen:?}");
    assert!(screen.contains("\x1b[2K"), "the bar is still redrawn in place: {screen:?}");
}

#[test]
fn json_and_piped_output_never_get_a_bar() {
    // --json on a terminal: JSON lines only.
    let w = world(3000);
    let (pty, slave) = Pty::open();
    let mut child = pty.spawn(w.cmd(&["backup", "--store", "a.db", "--to", "usb", "--json"]), slave, true);
    let screen = pty.wait_closed();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{screen}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
    let lines = json_lines(&screen.replace("\r\n", "\n"));
    assert_eq!(lines.last().unwrap()["event"], "summary");

    // Results piped, the terminal on stderr: the bar there, plain lines in the pipe.
    let (pty, slave) = Pty::open();
    let mut cmd = w.cmd(&["backup", "--store", "a.db", "--to", "usb", "--overwrite"]);
    cmd.stdout(Stdio::piped());
    let child = pty.spawn(cmd, slave, false);
    let out = child.wait_with_output().unwrap();
    let screen = pty.wait_closed();
    assert!(screen.contains("3,000/3,000 licenses"), "{screen:?}");
    let piped = String::from_utf8(out.stdout).unwrap();
    assert!(!piped.contains('\x1b'), "{piped:?}");
    let lines: Vec<&str> = piped.lines().collect();
    assert_eq!(lines.len(), 4, "three restricted licenses and the summary: {piped}");
    assert!(lines[0].starts_with("RESTRICTED_LICENSE "));
    assert!(!screen.contains("RESTRICTED_LICENSE"), "results go to stdout, not the terminal");

    // --no-progress: nothing drawn on the terminal.
    let (pty, slave) = Pty::open();
    let mut cmd = w.cmd(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--no-progress"]);
    cmd.stdout(Stdio::null());
    let mut child = pty.spawn(cmd, slave, false);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(pty.wait_closed(), "");
}

#[test]
fn ctrl_c_typed_on_the_terminal_cancels_the_backup_cleanly() {
    let w = world(6000);
    let usb = w.path("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let old = std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap();

    // Every event as a line on stdout, a pipe the test reads; the bar and the notices on the
    // terminal. Once the test stops reading, the backup cannot finish (see tests/cancel.rs).
    let (pty, slave) = Pty::open();
    let mut cmd = w.cmd(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "-v", "--progress-interval", "1"]);
    cmd.stdout(Stdio::piped());
    let mut child = pty.spawn(cmd, slave, false);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.starts_with("PROGRESS ")) {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0);
        lines.push(line);
    }
    pty.type_bytes(b"\x03");
    pty.wait_for("backup: cancelling; the previous backup, if any, stays as it was (Ctrl-C again quits at once)");
    lines.extend(out.lines().map(Result::unwrap));
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let screen = pty.wait_closed();
    assert!(screen.contains("/6,000 licenses"), "the bar was drawn: {screen:?}");
    assert!(
        screen.contains("\x1b[1;31merror:\x1b[0m \x1b[1mCANCELLED\x1b[0m: the operation was cancelled"),
        "{screen:?}"
    );
    assert!(lines.last().unwrap().starts_with("END backup failed: CANCELLED"), "{:?}", lines.last());
    assert!(lines.iter().filter(|l| l.starts_with("PROGRESS ")).count() < 6000, "stopped mid-way");
    assert_eq!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), old, "the old archive is intact");
    assert_eq!(files_in(&usb), [ARCHIVE_FILE_NAME], "no temporary file left");
}

/// The text a terminal shows: escape sequences removed, line ends as `\n`.
fn visible(screen: &str) -> String {
    let mut out = String::new();
    let mut rest = screen;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let end = tail.find(|c: char| c.is_ascii_alphabetic()).map_or(tail.len(), |i| i + 1);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out.replace("\r\n", "\n")
}

#[test]
fn labels_in_colour_stay_aligned() {
    let w = world(10);
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let (pty, slave) = Pty::open();
    let mut child = pty.spawn(w.cmd(&["inspect", "usb"]), slave, true);
    let screen = pty.wait_closed();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{screen}");
    assert!(screen.contains("\x1b[1marchive       \x1b[0m"), "labels in bold: {screen:?}");
    let text = visible(&screen);
    assert!(text.contains("\narchive       usb/licenses.lbk (") || text.starts_with("archive       usb/"), "{text}");
    assert!(text.contains("\nframing       10 license records, then the end record: intact\n"), "{text}");
}
