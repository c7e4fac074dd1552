//! What authenticated rows cost: `list_licenses` (every row checked against its seal) beside
//! the same rows read with the same SQL and not checked (what listing did before rows were
//! sealed), and a backup of the same store, at each size given (default 100k and 1M).
//!
//! ```text
//! cargo run --release -p license-backup --example row_auth_cost -- [SIZES] [DIR]
//! ```

use std::sync::Arc;
use std::time::Instant;

use license_backup::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<u32> = args
        .first()
        .map(|s| s.split(',').map(|n| n.parse().expect("a size")).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let dir = std::path::PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "target/row-auth-cost".into()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    println!("| licenses | SQL read, unchecked (baseline) | list_licenses, checked | ratio | backup | verify |");
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let path = dir.join(format!("store-{n}.db"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(dir.join(format!("store-{n}.db-wal")));
        let store = Arc::new(LicenseStore::open(&path)?);
        for chunk in (1..=n).collect::<Vec<_>>().chunks(50_000) {
            let licenses: Vec<NewLicense> = chunk
                .iter()
                .map(|&i| NewLicense {
                    key_id: KeyId::from_bytes(((i as u128) << 8 | 0x5a).to_be_bytes()),
                    content_key: format!("content-key-{i:08}").into_bytes(),
                    rights: Rights {
                        backup_allowed: i % 10 != 0,
                        plays_remaining: (i % 3 == 0).then_some(i),
                        ..Rights::default()
                    },
                    issuer: "https://licenses.example.com".into(),
                    issued_at: 1_700_000_000 + i64::from(i),
                })
                .collect();
            store.add_licenses(&licenses, ConflictPolicy::Keep)?;
        }
        // Baseline: the listing's own query, rows built, no seal checked.
        let best = |f: &mut dyn FnMut() -> Result<usize>| -> Result<f64> {
            let mut times = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let rows = f()?;
                assert_eq!(rows, n as usize);
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            Ok(times[0])
        };
        let conn = rusqlite::Connection::open(&path).expect("open");
        let unchecked = best(&mut || {
            let mut stmt = conn
                .prepare(
                    "SELECT key_id, play, burn, transfer, backup_allowed, expires_at, plays_remaining, issuer, \
                     issued_at, cataloged, title, artist, file_path, sealed_key FROM licenses ORDER BY key_id",
                )
                .expect("prepare");
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<u32>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, Vec<u8>>(13)?,
                    ))
                })
                .expect("query")
                .count();
            Ok(rows)
        })?;
        drop(conn);
        let checked = best(&mut || Ok(store.list_licenses()?.len()))?;
        let t = Instant::now();
        store.verify()?;
        let verify = t.elapsed().as_secs_f64();
        let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(dir.join(format!("service-{n}.db")))?);
        let restorer = create_backup_restorer(Arc::clone(&store), service);
        let folder = dir.join(format!("backup-{n}"));
        std::fs::create_dir_all(&folder).expect("backup folder");
        restorer.set_property("BackupPath", PropertyValue::String(folder.display().to_string()))?;
        let mut backup = Vec::new();
        for _ in 0..if n >= 1_000_000 { 1 } else { 3 } {
            let t = Instant::now();
            restorer.backup_licenses(BackupFlags { overwrite: true }, Arc::new(|_: &StatusEvent| Ok(())))?.wait()?;
            backup.push(t.elapsed().as_secs_f64());
        }
        backup.sort_by(f64::total_cmp);
        println!(
            "| {n} | {unchecked:.3} s | {checked:.3} s | {:.2}x | {:.3} s ({:.0} lic/s) | {verify:.3} s |",
            checked / unchecked,
            backup[0],
            f64::from(n) / backup[0]
        );
    }
    Ok(())
}
