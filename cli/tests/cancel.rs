//! Ctrl-C (SIGINT) in the middle of a backup or a restore, sent to the child process.
//!
//! No timing is involved. The store has far more events (a PROGRESS per license) than a pipe
//! holds, and the engine delivers every event before it commits anything, so the operation
//! cannot finish before the test has read its output: the test reads up to the first
//! PROGRESS, stops reading, sends SIGINT, and waits for the tool's cancel notice on standard
//! error (printed once the cancel was requested, and always before the tool exits). Only then
//! does it read the rest.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::*;
use license_backup::archive::ARCHIVE_FILE_NAME;
use serde_json::Value;

/// Licenses in the store: with a PROGRESS event each, far more output than a pipe holds.
const LICENSES: u32 = 6000;

/// A running tool, its stdout read line by line by the test, its stderr by a thread.
struct Session {
    child: Child,
    out: BufReader<ChildStdout>,
    lines: Vec<Value>,
    err: Receiver<String>,
    err_lines: Vec<String>,
}

impl Session {
    fn start(w: &World, args: &[&str]) -> Session {
        Session::spawn(w.cmd(args))
    }

    /// [`Session::start`] with `LICENSE_BACKUP_SIGNAL_GRACE_MS` set.
    fn start_env(w: &World, args: &[&str], grace_ms: &str) -> Session {
        let mut cmd = w.cmd(args);
        cmd.env("LICENSE_BACKUP_SIGNAL_GRACE_MS", grace_ms);
        Session::spawn(cmd)
    }

    fn spawn(mut cmd: std::process::Command) -> Session {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let (tx, err) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let _ = tx.send(line.unwrap());
            }
        });
        Session { child, out, lines: Vec::new(), err, err_lines: Vec::new() }
    }

    /// Reads events until one of kind `event` (then stops reading).
    fn read_until(&mut self, event: &str) {
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "output ended before a {event} event");
            let value: Value = serde_json::from_str(&line).unwrap();
            self.lines.push(value.clone());
            if value["event"] == event {
                return;
            }
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill with the pid of our own child and a valid signal number.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for a line on stderr that contains `text` (a generous deadline, only so that a
    /// broken tool fails the test instead of hanging it).
    fn wait_stderr(&mut self, text: &str) {
        loop {
            let line = self.err.recv_timeout(Duration::from_secs(120)).expect("no such line on stderr");
            self.err_lines.push(line.clone());
            if line.contains(text) {
                return;
            }
        }
    }

    /// Reads the rest of the output and waits for the exit.
    fn finish(mut self) -> (i32, Vec<Value>, Vec<String>) {
        for line in (&mut self.out).lines() {
            self.lines.push(serde_json::from_str(&line.unwrap()).unwrap());
        }
        let status = self.child.wait().unwrap();
        self.err_lines.extend(self.err.iter());
        (status.code().expect("exited, not killed"), self.lines, self.err_lines)
    }
}

fn progress_done(lines: &[Value]) -> Vec<u64> {
    lines.iter().filter(|v| v["event"] == "progress").map(|v| v["done"].as_u64().unwrap()).collect()
}

#[test]
fn sigint_mid_backup_cancels_keeps_the_old_archive_and_exits_130() {
    let w = World::new();
    w.store("a", LICENSES, 0, false);
    let usb = w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let old = std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap();

    let args = ["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--json", "--progress-interval", "1"];
    let mut s = Session::start(&w, &args);
    s.read_until("progress");
    s.signal(libc::SIGINT);
    s.wait_stderr("backup: cancelling; the previous backup, if any, stays as it was (Ctrl-C again quits at once)");
    let (code, lines, err) = s.finish();

    assert_eq!(code, 130, "stderr: {err:?}");
    let done = progress_done(&lines);
    assert!(!done.is_empty() && *done.last().unwrap() < u64::from(LICENSES), "stopped mid-way: {:?}", done.last());
    let end = &lines[lines.len() - 2];
    assert_eq!((end["event"].as_str(), end["error"].as_str()), (Some("end"), Some("CANCELLED")));
    let summary = lines.last().unwrap();
    assert_eq!((summary["exit_code"].as_u64(), summary["error"].as_str()), (Some(130), Some("CANCELLED")));
    assert_eq!(err.last().unwrap(), "error: CANCELLED: the operation was cancelled (nothing was changed)");
    assert_eq!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), old, "the old archive is intact");
    assert_eq!(files_in(&usb), [ARCHIVE_FILE_NAME], "no temporary file left");
}

#[test]
fn sigint_mid_restore_leaves_the_store_as_it_was() {
    let w = World::new();
    w.store("a", LICENSES, 0, false);
    w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let b = w.store("b", 3, 0, false);
    let before = snapshot(&b);

    let args =
        ["restore", "--store", "b.db", "--from", "usb", "--replace-existing", "--json", "--progress-interval", "1"];
    let mut s = Session::start(&w, &args);
    s.read_until("progress");
    s.signal(libc::SIGINT);
    s.wait_stderr("restore: cancelling; the store stays as it was");
    let (code, lines, _) = s.finish();

    assert_eq!(code, 130);
    let kinds: Vec<&str> = lines.iter().take(3).map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connecting", "disconnecting", "begin"]);
    assert!(*progress_done(&lines).last().unwrap() < u64::from(LICENSES));
    assert_eq!(lines[lines.len() - 2]["error"], "CANCELLED");
    assert_eq!(snapshot(&b), before, "not one license added or replaced");
}

#[test]
fn a_second_sigint_exits_at_once_and_the_old_archive_is_still_intact() {
    let w = World::new();
    w.store("a", LICENSES, 0, false);
    let usb = w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let old = std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap();

    let args = ["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--json", "--progress-interval", "1"];
    // No grace: every signal after the first quits at once.
    let mut s = Session::start_env(&w, &args, "0");
    s.read_until("progress");
    s.signal(libc::SIGINT);
    s.wait_stderr("cancelling");
    // The output is still blocked, so the operation cannot end: only the second signal can.
    s.signal(libc::SIGINT);
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), old, "the old archive is intact");
    // The backup was not allowed to end: its temporary file may remain (documented).
    for name in files_in(&usb) {
        assert!(name == ARCHIVE_FILE_NAME || (name.starts_with(".licenses.lbk.") && name.ends_with(".tmp")), "{name}");
    }
}

#[test]
fn a_signal_delivered_twice_at_once_is_one_clean_cancel() {
    // timeout(1) signals the command, then its whole process group: the tool gets SIGTERM twice.
    let w = World::new();
    w.store("a", LICENSES, 0, false);
    let usb = w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let old = std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap();

    let args = ["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--json", "--progress-interval", "1"];
    // A grace far longer than the test, so that the second signal falls in it however slow
    // the machine.
    let mut s = Session::start_env(&w, &args, "600000");
    s.read_until("progress");
    s.signal(libc::SIGTERM);
    // Handled (so the second is not merged with it by the kernel), then the duplicate.
    s.wait_stderr("cancelling");
    s.signal(libc::SIGTERM);
    let (code, lines, _) = s.finish();
    assert_eq!(code, 130);
    assert_eq!(lines.last().unwrap()["error"], "CANCELLED", "the operation ended, cancelled");
    assert_eq!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), old);
    assert_eq!(files_in(&usb), [ARCHIVE_FILE_NAME], "no temporary file left");
}
