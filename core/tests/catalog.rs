//! The catalog beside the licenses: an entry lives in its license's row while the device has the
//! license, and on its own otherwise. What the application sees does not depend on where it is:
//! entries follow their key IDs through adding, replacing and removing licenses and through
//! restores; a store of the layout before (schema 3, a separate catalog table) migrates in one
//! transaction; and editing a row's catalog columns changes no license.

mod common;

use std::path::Path;

use common::*;
use license_backup::*;
use rusqlite::Connection;

fn sql(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn entry(title: &str) -> CatalogEntry {
    CatalogEntry { title: Some(title.into()), artist: Some(format!("artist of {title}")), file_path: None }
}

fn license(n: u32, plays: Option<u32>) -> NewLicense {
    NewLicense {
        key_id: key_id(n),
        content_key: content_key(n),
        rights: Rights { plays_remaining: plays, ..Rights::default() },
        issuer: "https://issuer.example".into(),
        issued_at: 1_700_000_000 + i64::from(n),
    }
}

/// Key IDs with an entry in the `catalog` table and in a license row (the layout: each key ID
/// in one place).
fn placed(path: &Path) -> (Vec<KeyId>, Vec<KeyId>) {
    let db = sql(path);
    let ids = |q: &str| -> Vec<KeyId> {
        db.prepare(q)
            .unwrap()
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|k| KeyId::from_slice(&k.unwrap()).unwrap())
            .collect()
    };
    (
        ids("SELECT key_id FROM catalog ORDER BY key_id"),
        ids("SELECT key_id FROM licenses WHERE cataloged ORDER BY key_id"),
    )
}

#[test]
fn an_entry_follows_its_key_id_through_adding_replacing_and_removing_its_license() {
    let w = World::new();
    let (store, _) = w.device("a");
    let path = store.path().to_path_buf();
    // An entry for content whose license is not on the device.
    store.set_catalog_entry(&key_id(1), &entry("one")).unwrap();
    assert_eq!(store.catalog_entry(&key_id(1)).unwrap(), Some(entry("one")));
    assert_eq!(placed(&path), (vec![key_id(1)], vec![]));
    // Its license arrives: the entry is the license's.
    store.add_license(&license(1, None), ConflictPolicy::Keep).unwrap();
    assert_eq!(store.get_license(&key_id(1)).unwrap().unwrap().catalog, Some(entry("one")));
    assert_eq!(placed(&path), (vec![], vec![key_id(1)]));
    // Replacing the license keeps the entry; changing the entry keeps the license's seal.
    store.add_license(&license(1, Some(3)), ConflictPolicy::Replace).unwrap();
    let sealed = |n: u32| -> Vec<u8> {
        sql(&path)
            .query_row("SELECT sealed_key FROM licenses WHERE key_id = ?1", [key_id(n).as_bytes().as_slice()], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let before = sealed(1);
    store.set_catalog_entry(&key_id(1), &entry("uno")).unwrap();
    assert_eq!(sealed(1), before, "the catalog is not sealed: setting it re-seals nothing");
    let l = store.get_license(&key_id(1)).unwrap().unwrap();
    assert_eq!((l.catalog, l.rights.plays_remaining), (Some(entry("uno")), Some(3)));
    assert_eq!(store.content_key(&key_id(1)).unwrap(), content_key(1));
    // A license without an entry, then with one, then without again.
    store.add_license(&license(2, None), ConflictPolicy::Keep).unwrap();
    assert_eq!(store.get_license(&key_id(2)).unwrap().unwrap().catalog, None);
    assert!(!store.remove_catalog_entry(&key_id(2)).unwrap());
    store.set_catalog_entry(&key_id(2), &CatalogEntry::default()).unwrap();
    assert_eq!(store.get_license(&key_id(2)).unwrap().unwrap().catalog, Some(CatalogEntry::default()));
    assert!(store.remove_catalog_entry(&key_id(2)).unwrap());
    assert_eq!(store.get_license(&key_id(2)).unwrap().unwrap().catalog, None);
    assert_eq!(store.catalog_entry(&key_id(2)).unwrap(), None);
    // A batch that fails (a key ID already there, under Keep) takes no entry anywhere.
    store.set_catalog_entry(&key_id(3), &entry("three")).unwrap();
    let e = store.add_licenses(&[license(3, None), license(1, None)], ConflictPolicy::Keep).unwrap_err();
    assert_eq!(e.code(), ErrorCode::LicenseExists);
    assert_eq!(store.get_license(&key_id(3)).unwrap(), None);
    assert_eq!(placed(&path), (vec![key_id(3)], vec![key_id(1)]));
    // Removing a license leaves its entry.
    assert!(store.remove_license(&key_id(1)).unwrap());
    assert_eq!(store.catalog_entry(&key_id(1)).unwrap(), Some(entry("uno")));
    assert_eq!(
        store.list_catalog().unwrap(),
        vec![(key_id(1), entry("uno")), (key_id(3), entry("three"))],
        "every entry, in key-ID order, licensed or not"
    );
    assert_eq!(placed(&path), (vec![key_id(1), key_id(3)], vec![]));
    // And the license back (the application acquires it again): the entry with it.
    store.add_license(&license(1, None), ConflictPolicy::Keep).unwrap();
    assert_eq!(store.get_license(&key_id(1)).unwrap().unwrap().catalog, Some(entry("uno")));
    assert_eq!(store.verify().unwrap(), 2);
}

/// A restore adds the archive's entries the device does not have, whatever happens to the
/// license (added, kept, replaced): the device's own entry always stays.
#[test]
fn a_restore_adds_the_entries_the_device_lacks_and_keeps_its_own() {
    for replace in [false, true] {
        let w = World::new();
        let (source, r) = w.device("source");
        source.add_licenses(&(1..=6).map(|n| license(n, Some(n))).collect::<Vec<_>>(), ConflictPolicy::Keep).unwrap();
        for n in 1..=5 {
            source.set_catalog_entry(&key_id(n), &entry(&format!("archived {n}"))).unwrap();
        }
        let (res, _) = backup(&r, true);
        res.unwrap();
        let (target, r) = w.device("target");
        // 1: an entry without a license; 2: a license without an entry; 3: a license with an
        // entry; 4 and 5: nothing; 6: an entry without a license, whose archived license has
        // no entry; 7: an entry of content the archive does not have.
        target.set_catalog_entry(&key_id(1), &entry("own 1")).unwrap();
        target.add_license(&license(2, Some(20)), ConflictPolicy::Keep).unwrap();
        target.add_license(&license(3, Some(30)), ConflictPolicy::Keep).unwrap();
        target.set_catalog_entry(&key_id(3), &entry("own 3")).unwrap();
        target.set_catalog_entry(&key_id(6), &entry("own 6")).unwrap();
        target.set_catalog_entry(&key_id(7), &entry("own 7")).unwrap();
        let (res, _) = restore(&r, RestoreFlags { replace_existing: replace, ..RestoreFlags::default() });
        let summary = res.unwrap();
        assert_eq!((summary.licenses, summary.skipped), if replace { (6, 0) } else { (4, 2) }, "replace={replace}");
        let got: Vec<(KeyId, Option<CatalogEntry>, Option<u32>)> = target
            .list_licenses()
            .unwrap()
            .into_iter()
            .map(|l| (l.key_id, l.catalog, l.rights.plays_remaining))
            .collect();
        let plays = |n: u32, own: u32| Some(if replace { n } else { own });
        assert_eq!(
            got,
            vec![
                (key_id(1), Some(entry("own 1")), Some(1)),
                (key_id(2), Some(entry("archived 2")), plays(2, 20)),
                (key_id(3), Some(entry("own 3")), plays(3, 30)),
                (key_id(4), Some(entry("archived 4")), Some(4)),
                (key_id(5), Some(entry("archived 5")), Some(5)),
                (key_id(6), Some(entry("own 6")), Some(6)),
            ],
            "replace={replace}"
        );
        assert_eq!(target.catalog_entry(&key_id(7)).unwrap(), Some(entry("own 7")));
        assert_eq!(target.list_catalog().unwrap().len(), 7);
        assert_eq!(placed(target.path()), (vec![key_id(7)], (1..=6).map(key_id).collect()), "replace={replace}");
        assert_eq!(target.verify().unwrap(), 6);
        for n in 1..=6 {
            assert_eq!(target.content_key(&key_id(n)).unwrap(), content_key(n));
        }
    }
}

/// Turns a store of this version back into the layout of schema 3: the catalog in its own
/// table (every entry, licensed or not), the license rows without catalog columns.
fn back_to_schema_3(path: &Path) {
    sql(path)
        .execute_batch(
            "BEGIN;
             INSERT INTO catalog (key_id, title, artist, file_path)
                 SELECT key_id, title, artist, file_path FROM licenses WHERE cataloged;
             ALTER TABLE licenses DROP COLUMN title;
             ALTER TABLE licenses DROP COLUMN artist;
             ALTER TABLE licenses DROP COLUMN file_path;
             ALTER TABLE licenses DROP COLUMN cataloged;
             PRAGMA user_version = 3;
             COMMIT;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
}

/// A schema-3 store, and what it held before it went back to schema 3.
struct Schema3 {
    path: std::path::PathBuf,
    licenses: Vec<(License, Vec<u8>)>,
    catalog: Vec<(KeyId, CatalogEntry)>,
    device_id: String,
}

/// A schema-3 store with licenses with and without entries, entries with and without licenses
/// and a tombstone.
fn schema_3_store(w: &World) -> Schema3 {
    let (store, _) = w.device("v3");
    fill(&store, 30, 7);
    for n in (1..=30).step_by(4) {
        store.remove_catalog_entry(&key_id(n)).unwrap();
    }
    for n in 40..45 {
        store.set_catalog_entry(&key_id(n), &entry(&format!("unlicensed {n}"))).unwrap();
    }
    assert!(store.remove_license(&key_id(2)).unwrap());
    let (licenses, catalog, id) = (snapshot(&store), store.list_catalog().unwrap(), store.device_id().unwrap());
    assert_eq!(catalog.len(), 30 - 8 + 5);
    let path = store.path().to_path_buf();
    drop(store);
    back_to_schema_3(&path);
    let db = sql(&path);
    let columns: i64 = db.query_row("SELECT count(*) FROM pragma_table_info('licenses')", [], |r| r.get(0)).unwrap();
    let entries: i64 = db.query_row("SELECT count(*) FROM catalog", [], |r| r.get(0)).unwrap();
    assert_eq!((columns, entries), (10, 27), "the schema-3 layout");
    Schema3 { path, licenses, catalog, device_id: id }
}

#[test]
fn a_schema_3_store_is_migrated_in_one_transaction() {
    let w = World::new();
    let Schema3 { path, licenses, catalog, device_id: id } = schema_3_store(&w);
    let store = LicenseStore::open(&path).unwrap();
    assert_eq!(store.device_id().unwrap(), id);
    assert_eq!(snapshot(&store), licenses, "every license, its entry and content key as before");
    assert_eq!(store.list_catalog().unwrap(), catalog);
    assert_eq!(store.verify().unwrap(), 29);
    let (unlicensed, in_rows) = placed(&path);
    assert_eq!(unlicensed, [2, 40, 41, 42, 43, 44].map(key_id), "entries without a license (2 was removed)");
    assert_eq!(in_rows.len(), 21);
    let version: i64 = sql(&path).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    // The removed license's tombstone still narrows a restore, and the store works as usual.
    store.add_license(&license(2, None), ConflictPolicy::Keep).unwrap();
    assert_eq!(store.get_license(&key_id(2)).unwrap().unwrap().catalog, Some(CatalogEntry::titled("Track 2")));
}

/// A migration that fails half-way (here: a trigger the test put on the licenses) changes
/// nothing: the file stays a schema-3 store, byte for byte, and opens once the cause is gone.
#[test]
fn a_failed_migration_leaves_the_schema_3_store() {
    let w = World::new();
    let Schema3 { path, licenses, catalog, .. } = schema_3_store(&w);
    sql(&path)
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE ON licenses BEGIN SELECT RAISE(ABORT, 'refused'); END;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let e = LicenseStore::open(&path).unwrap_err();
    assert!(e.message().contains("refused"), "the migration's own failure: {e}");
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0), "nothing left in the log");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "a failed migration changes nothing");
    let db = sql(&path);
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let columns: i64 = db.query_row("SELECT count(*) FROM pragma_table_info('licenses')", [], |r| r.get(0)).unwrap();
    assert_eq!((version, columns), (3, 10));
    db.execute_batch("DROP TRIGGER refuse;").unwrap();
    let store = LicenseStore::open(&path).unwrap();
    assert_eq!(snapshot(&store), licenses);
    assert_eq!(store.list_catalog().unwrap(), catalog);
    assert_eq!(store.verify().unwrap(), 29);
}

/// Someone with the store file edits the catalog columns of license rows. The seal covers what
/// it covered before (the license: key ID, rights, issuer, issue time, content key), so no
/// edit of them changes a license, its content key, or what a backup carries of it; the
/// catalog stays what it always was, the application's unsealed metadata. Edits of the sealed
/// columns of the same rows are still caught.
#[test]
fn editing_a_rows_catalog_columns_changes_no_license() {
    let w = World::new();
    let (store, r) = w.device("a");
    fill(&store, 12, 5);
    let before = snapshot(&store);
    let db = sql(store.path());
    let k = |n: u32| key_id(n).as_bytes().to_vec();
    db.execute("UPDATE licenses SET title = 'edited', artist = NULL, file_path = '/x' WHERE key_id = ?1", [k(1)])
        .unwrap();
    db.execute("UPDATE licenses SET cataloged = 0, title = NULL WHERE key_id = ?1", [k(2)]).unwrap();
    db.execute("UPDATE licenses SET title = issuer, artist = hex(sealed_key) WHERE key_id = ?1", [k(3)]).unwrap();
    assert!(
        db.execute("UPDATE licenses SET cataloged = 2 WHERE key_id = ?1", [k(4)]).is_err(),
        "checked by the schema"
    );
    // Every license reads, checks out and opens as before; only the metadata changed.
    assert_eq!(store.verify().unwrap(), 12);
    let after = snapshot(&store);
    for ((a, ka), (b, kb)) in after.iter().zip(&before) {
        assert_eq!(
            (a.key_id, &a.rights, &a.issuer, a.issued_at, ka),
            (b.key_id, &b.rights, &b.issuer, b.issued_at, kb)
        );
    }
    assert_eq!(
        after[0].0.catalog,
        Some(CatalogEntry { title: Some("edited".into()), artist: None, file_path: Some("/x".into()) })
    );
    assert_eq!(after[1].0.catalog, None);
    // A backup carries the same licenses (restricted ones stay out); a restore elsewhere
    // gives the same content keys and rights.
    let (res, _) = backup(&r, true);
    assert_eq!(res.unwrap().licenses, 10);
    let (other, r2) = w.device("b");
    let (res, _) = restore(&r2, RestoreFlags::default());
    assert_eq!(res.unwrap().licenses, 10);
    for (l, key) in before.iter().filter(|(l, _)| l.rights.backup_allowed) {
        let got = other.get_license(&l.key_id).unwrap().unwrap();
        assert_eq!((&got.rights, other.content_key(&l.key_id).unwrap().to_vec()), (&l.rights, key.clone()));
    }
    // The sealed columns of an edited row are still protected.
    db.execute("UPDATE licenses SET plays_remaining = 99 WHERE key_id = ?1", [k(1)]).unwrap();
    assert_eq!(store.verify().unwrap_err().code(), ErrorCode::LicenseTampered);
    assert_eq!(store.content_key(&key_id(1)).unwrap_err().code(), ErrorCode::LicenseTampered);
}
