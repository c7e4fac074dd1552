//! Tamper sweep: every byte of a small archive flipped (three masks each), every truncation
//! length, and, on a larger archive, every header byte plus a deterministic sample of the
//! rest. Each damaged archive must be rejected with `ARCHIVE_CORRUPT`: `UNSUPPORTED_VERSION`
//! needs a valid header checksum and `WRONG_KEY` a changed fingerprint under a valid checksum,
//! neither of which one flip or one cut can give. The full sweep uses the pure reader (the
//! same `read_header` / `EmbeddedService::unwrap_data_key` / `RecordReader` a restore uses);
//! a deterministic sample goes through a real restore, which must also leave the store as it
//! was. Figures are printed (`cargo test --test tamper_sweep -- --nocapture`).

mod common;

use std::time::Instant;

use common::*;
use license_backup::archive::{self, HEADER_LEN, MAGIC, RecordReader, read_header};
use license_backup::*;

/// Reads a whole archive from memory the way a restore does, without a store. The service's
/// answer for the intact header is remembered (HPKE is deterministic): every header that differs
/// goes to the service again.
fn read_bytes(service: &EmbeddedService, bytes: &[u8]) -> Result<usize> {
    thread_local! {
        static KNOWN: std::cell::RefCell<Option<(archive::ArchiveHeader, [u8; 32])>> = const { std::cell::RefCell::new(None) };
    }
    let mut r = bytes;
    let header = read_header(&mut r)?;
    let known = KNOWN.with_borrow(|k| k.as_ref().filter(|(h, _)| *h == header).map(|(_, key)| *key));
    let key = match known {
        Some(key) => key,
        None => {
            let key = *service.unwrap_data_key(&header)?;
            KNOWN.set(Some((header.clone(), key)));
            key
        }
    };
    let mut reader = RecordReader::new(r, header.archive_id, &key);
    let mut n = 0;
    while reader.next_license()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Byte offsets of the frames (license records, then the end record).
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        out.push(pos);
        pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
    }
    out
}

const MASKS: [u8; 3] = [0x01, 0x80, 0xFF];

fn expect_corrupt(what: &str, res: Result<usize>) {
    expect_rejected(what, res, ErrorCode::ArchiveCorrupt);
}

fn expect_rejected(what: &str, res: Result<usize>, want: ErrorCode) {
    match res {
        Err(e) => assert_eq!(e.code(), want, "{what}: {e}"),
        Ok(n) => panic!("{what}: a damaged archive was read ({n} licenses)"),
    }
}

/// What a flip at `at` is reported as: a file whose magic is gone is not an archive at all.
fn flip_code(at: usize) -> ErrorCode {
    if at < MAGIC.len() { ErrorCode::WrongFileKind } else { ErrorCode::ArchiveCorrupt }
}

#[test]
fn every_flip_and_every_cut_of_a_small_archive_is_corrupt() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 4);
    backup(&ra, false).0.unwrap();
    let good = read_all(&archive_path(&w));
    assert_eq!(read_bytes(&w.service, &good).unwrap(), 4);
    let started = Instant::now();
    let mut damaged = 0;
    for at in 0..good.len() {
        for mask in MASKS {
            let mut bytes = good.clone();
            bytes[at] ^= mask;
            expect_rejected(&format!("flip {mask:#04x} at {at}"), read_bytes(&w.service, &bytes), flip_code(at));
            damaged += 1;
        }
    }
    let flips = damaged;
    for cut in 0..good.len() {
        expect_corrupt(&format!("cut at {cut}"), read_bytes(&w.service, &good[..cut]));
        damaged += 1;
    }
    let mut longer = good.clone();
    longer.push(0);
    expect_corrupt("one byte appended", read_bytes(&w.service, &longer));
    damaged += 1;
    println!(
        "tamper sweep (pure reader): {}-byte archive, {flips} flips + {} cuts + 1 extension = {damaged} damaged \
         archives rejected in {:?}",
        good.len(),
        good.len(),
        started.elapsed()
    );
}

#[test]
fn header_sweep_and_sampled_flips_of_a_larger_archive_are_corrupt() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 120, 0);
    backup(&ra, false).0.unwrap();
    let good = read_all(&archive_path(&w));
    let started = Instant::now();
    let mut damaged = 0;
    for at in 0..HEADER_LEN {
        let mut bytes = good.clone();
        bytes[at] ^= 0xFF;
        expect_rejected(&format!("header flip at {at}"), read_bytes(&w.service, &bytes), flip_code(at));
        damaged += 1;
    }
    let mut rng = Rng(0x7A3_9E5);
    for _ in 0..300 {
        let at = HEADER_LEN + rng.below((good.len() - HEADER_LEN) as u64) as usize;
        let mask = MASKS[rng.below(MASKS.len() as u64) as usize];
        let mut bytes = good.clone();
        bytes[at] ^= mask;
        expect_corrupt(&format!("flip {mask:#04x} at {at}"), read_bytes(&w.service, &bytes));
        damaged += 1;
    }
    for cut in frames(&good) {
        expect_corrupt(&format!("cut at {cut}"), read_bytes(&w.service, &good[..cut]));
        damaged += 1;
    }
    println!(
        "tamper sweep (pure reader): {}-byte archive of 120 licenses, {damaged} damaged archives \
         ({HEADER_LEN} header flips, 300 sampled flips, {} record-boundary cuts) rejected in {:?}",
        good.len(),
        frames(&good).len(),
        started.elapsed()
    );
}

#[test]
fn a_sample_of_damaged_archives_fails_a_real_restore_and_leaves_the_store_untouched() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 4);
    backup(&ra, false).0.unwrap();
    let good = read_all(&archive_path(&w));
    let (b, rb) = w.device("b");
    fill(&b, 2, 0);
    let before = snapshot(&b);
    let started = Instant::now();
    let mut cases: Vec<(String, Vec<u8>, ErrorCode)> = Vec::new();
    // Every record boundary, and a spread of header lengths.
    for cut in frames(&good).into_iter().chain((0..HEADER_LEN).step_by(7)) {
        // An empty file is what a backup that died while placing its archive leaves: no archive.
        let want = if cut == 0 { ErrorCode::ArchiveMissing } else { ErrorCode::ArchiveCorrupt };
        cases.push((format!("cut at {cut}"), good[..cut].to_vec(), want));
    }
    // The first byte of every header field and frame field, and a seeded sample of the rest.
    let fr = frames(&good);
    let mut points: Vec<usize> = vec![0, 8, 10, 12, 16, 24, 40, 56, 64, 80, 112, 160, 175];
    for f in &fr {
        points.extend([*f, f + 1, f + 17, f + 21, f + 30]);
    }
    let mut rng = Rng(42);
    points.extend((0..40).map(|_| rng.below(good.len() as u64) as usize));
    for at in points {
        let mut bytes = good.clone();
        bytes[at] ^= MASKS[at % 3];
        cases.push((format!("flip at {at}"), bytes, flip_code(at)));
    }
    let n = cases.len();
    for (what, bytes, want) in cases {
        std::fs::write(archive_path(&w), &bytes).unwrap();
        let (res, rec) = restore(&rb, RestoreFlags::default());
        let code = res.expect_err(&what).code();
        assert_eq!(code, want, "{what}");
        assert_eq!(rec.kinds().iter().filter(|k| **k == "end").count(), 1, "{what}: one END");
        assert_eq!(rec.kinds().last(), Some(&"end"));
        assert_eq!(snapshot(&b), before, "{what}: the store changed");
    }
    assert_eq!(b.verify().unwrap(), 2);
    println!("tamper sweep (restore path): {n} damaged archives rejected, store untouched, in {:?}", started.elapsed());
}
