//! Micro-benchmarks of the hot paths (criterion): sealing and opening content keys and archive
//! records, store reads and writes, a 10k restore and its quota pass, and event dispatch.
//! `cargo bench -p license-backup --bench hot_paths`; the end-to-end figures are `make bench`
//! (core/examples/bench.rs).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use license_backup::archive::{HEADER_LEN, RecordReader, read_header};
use license_backup::bench_support::{ContentKeySealer, RecordSealer, dispatch_progress};
use license_backup::*;

fn license(i: u64) -> License {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&i.to_be_bytes());
    License {
        key_id: KeyId::from_bytes(b),
        rights: Rights { plays_remaining: Some(5), ..Rights::default() },
        issuer: "https://licenses.example.com/issue".into(),
        issued_at: 1_700_000_000,
        catalog: Some(CatalogEntry {
            title: Some(format!("Track {i} of the collection")),
            artist: Some("Artist".into()),
            file_path: None,
        }),
    }
}

fn new_license(i: u64) -> NewLicense {
    let l = license(i);
    NewLicense { key_id: l.key_id, content_key: vec![7; 16], rights: l.rights, issuer: l.issuer, issued_at: 1 }
}

fn crypto(c: &mut Criterion) {
    let mut g = c.benchmark_group("crypto");
    g.throughput(Throughput::Elements(1));
    let sealer = ContentKeySealer::default();
    let kid = KeyId::from_bytes([9; 16]);
    g.bench_function("seal_content_key", |b| b.iter(|| sealer.seal(black_box(&kid), black_box(&[7u8; 16]))));
    let sealed = sealer.seal(&kid, &[7; 16]);
    g.bench_function("open_content_key", |b| b.iter(|| sealer.open(black_box(&kid), black_box(&sealed)).unwrap()));

    let dir = tempfile::tempdir().unwrap();
    let service = EmbeddedService::open(dir.path().join("service.db")).unwrap();
    let pk = service.public_key().unwrap();
    let lic = license(1);
    let mut writer = RecordSealer::new(std::io::sink(), &pk).unwrap();
    g.bench_function("seal_record", |b| b.iter(|| writer.seal(black_box(&lic), black_box(&[7u8; 16])).unwrap()));

    // Opening: an in-memory archive of 1,000 records, read back whole.
    const N: u64 = 1_000;
    let mut writer = RecordSealer::new(std::io::Cursor::new(Vec::new()), &pk).unwrap();
    for i in 0..N {
        writer.seal(&license(i), &[7; 16]).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    let header = read_header(&mut bytes.as_slice()).unwrap();
    let key = service.unwrap_data_key(&header).unwrap();
    g.throughput(Throughput::Elements(N));
    g.bench_function("open_records_1k", |b| {
        b.iter(|| {
            let mut reader = RecordReader::new(&bytes[HEADER_LEN..], header.archive_id, &key);
            let mut n = 0;
            while reader.next_license().unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, N);
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    let dir = tempfile::tempdir().unwrap();
    const N: u64 = 1_000;
    g.throughput(Throughput::Elements(N));
    let mut round = 0u64;
    g.bench_function("add_licenses_1k", |b| {
        b.iter_batched(
            || {
                round += 1;
                let store = LicenseStore::open(dir.path().join(format!("w{round}.db"))).unwrap();
                (store, (0..N).map(new_license).collect::<Vec<_>>())
            },
            |(store, batch)| store.add_licenses(&batch, ConflictPolicy::Keep).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let store = LicenseStore::open(dir.path().join("r.db")).unwrap();
    store.add_licenses(&(0..N).map(new_license).collect::<Vec<_>>(), ConflictPolicy::Keep).unwrap();
    g.bench_function("list_licenses_1k", |b| b.iter(|| assert_eq!(store.list_licenses().unwrap().len(), N as usize)));
    g.throughput(Throughput::Elements(1));
    let kid = license(N / 2).key_id;
    g.bench_function("get_license", |b| b.iter(|| store.get_license(black_box(&kid)).unwrap().unwrap()));
    g.bench_function("content_key", |b| b.iter(|| store.content_key(black_box(&kid)).unwrap()));
    g.finish();
}

/// A 10k-license restore through the public API, into a fresh store with a fresh copy of the
/// ledger each time (the service's ledger pass, the verifying pass and the one transaction),
/// and the read-only quota pass that shows a user what a restore would cost.
fn restore(c: &mut Criterion) {
    let mut g = c.benchmark_group("restore");
    const N: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("service.db");
    let folder = dir.path().join("usb");
    std::fs::create_dir_all(&folder).unwrap();
    {
        let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(&ledger).unwrap());
        let store = Arc::new(LicenseStore::open(dir.path().join("a.db")).unwrap());
        store.add_licenses(&(0..N).map(new_license).collect::<Vec<_>>(), ConflictPolicy::Keep).unwrap();
        let r = create_backup_restorer(store, service);
        r.set_property("BackupPath", PropertyValue::String(folder.display().to_string())).unwrap();
        r.backup_licenses(BackupFlags { overwrite: true }, Arc::new(|_: &StatusEvent| Ok(()))).unwrap().wait().unwrap();
    }
    let restorer_at = |round: u64| {
        let copy = dir.path().join(format!("service-{round}.db"));
        std::fs::copy(&ledger, &copy).unwrap();
        let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(&copy).unwrap());
        let store = Arc::new(LicenseStore::open(dir.path().join(format!("b{round}.db"))).unwrap());
        let r = create_backup_restorer(store, service);
        r.set_property("RestorePath", PropertyValue::String(folder.display().to_string())).unwrap();
        r
    };
    g.throughput(Throughput::Elements(N));
    let mut round = 0u64;
    g.bench_function("restore_10k", |b| {
        b.iter_batched(
            || {
                round += 1;
                restorer_at(round)
            },
            |r| {
                let s = r.restore_licenses(RestoreFlags::default(), Arc::new(|_: &StatusEvent| Ok(()))).unwrap().wait();
                assert_eq!(s.unwrap().licenses, N);
            },
            BatchSize::PerIteration,
        )
    });
    let r = restorer_at(0);
    g.bench_function("quota_10k", |b| b.iter(|| assert_eq!(r.restore_quota().unwrap().licenses, N)));
    g.finish();
}

fn events(c: &mut Criterion) {
    let mut g = c.benchmark_group("events");
    const N: u64 = 10_000;
    g.throughput(Throughput::Elements(N));
    let noop: Arc<dyn StatusCallback> = Arc::new(|e: &StatusEvent| {
        black_box(e);
        Ok(())
    });
    g.bench_function("dispatch_progress_10k", |b| b.iter(|| dispatch_progress(Arc::clone(&noop), N).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = crypto, store, restore, events
}
criterion_main!(benches);
