//! The bench's ledger-scale rows (`--service postgres`), each ledger beside the other in one run:
//!
//! * **Accounts**: 32 clients authorizing 1,000-license restores spread over 1, 8 and 32 accounts
//!   (`--accounts`), each account with its own device and archive; audited per account.
//! * **Ledger size**: the latency of one client's authorizations of a 1,000-license archive in a
//!   ledger pre-filled to each of `--ledger-sizes` placements (default 100k and 1M; the issue's
//!   figure is `--ledger-sizes 100000,10000000`), grown in place between the measurements.
//!
//! The pre-fill writes what the service itself writes, with the real schema, indexes and
//! constraints: accounts named `filler-N`, each with an origin and a restored device
//! (registered: public key, device ID its fingerprint), one confirmed reservation of
//! [`PER_ACCOUNT`] licenses, and a placement row per license (random key ID; entries: the
//! origin, then the device, each tagged with the reservation, as `Entry::encode` writes them).
//! One filler account is audited through the service afterwards: the rows read as the service's.

use super::*;

/// Licenses of each pre-filled account.
pub const PER_ACCOUNT: u64 = 1_000;

/// Authorizations of the ledger-size rows are released, not confirmed: each adds the client's
/// device to every row of the archive, the release makes that entry dead and the next
/// authorization drops it and adds a live one, so every authorization reads and rewrites all
/// 1,000 rows and the rows keep their size from one ledger size to the next.
const SIZE_MODE: &str = "release";

/// The SQL that adds `accounts` filler accounts numbered from `first` to a PostgreSQL ledger.
fn pg_fill_sql(first: u64, accounts: u64) -> String {
    let last = first + accounts - 1;
    // LEB128 of a reservation number below 2^21 (what Entry::encode writes).
    let leb = "CASE WHEN r.id < 128 THEN set_byte('\\x00'::bytea, 0, r.id::int) \
               WHEN r.id < 16384 THEN set_byte(set_byte('\\x0000'::bytea, 0, (r.id & 127 | 128)::int), 1, (r.id >> 7)::int) \
               ELSE set_byte(set_byte(set_byte('\\x000000'::bytea, 0, (r.id & 127 | 128)::int), 1, ((r.id >> 7) & 127 | 128)::int), 2, (r.id >> 14)::int) END";
    let random32 = "uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())";
    format!(
        "CREATE TEMP TABLE fill AS SELECT 'filler-' || g AS name, {random32} AS origin_pk, {random32} AS device_pk \
           FROM generate_series({first}, {last}) g; \
         INSERT INTO accounts (name) SELECT name FROM fill; \
         INSERT INTO devices (device_id, account, counts_as, public_key, since) \
           SELECT substring(sha256(v.pk) for 16), a.id, substring(sha256(v.pk) for 16), v.pk, 1700000000 \
           FROM fill f JOIN accounts a ON a.name = f.name, LATERAL (VALUES (f.origin_pk), (f.device_pk)) v(pk); \
         INSERT INTO reservations (account, request_id, archive_id, device_id, counted_as, licenses, key_digest, \
             state, created_at, settled_at) \
           SELECT a.id, uuid_send(gen_random_uuid()), uuid_send(gen_random_uuid()), substring(sha256(f.device_pk) for 16), \
             substring(sha256(f.device_pk) for 16), {PER_ACCOUNT}, sha256(uuid_send(gen_random_uuid())), 'confirmed', \
             1700000000, 1700000100 \
           FROM fill f JOIN accounts a ON a.name = f.name; \
         INSERT INTO placements (account, key_id, entries) \
           SELECT r.account, uuid_send(gen_random_uuid()), \
             substring(sha256(f.origin_pk) for 16) || e.leb || r.device_id || e.leb \
           FROM fill f JOIN accounts a ON a.name = f.name JOIN reservations r ON r.account = a.id, \
             LATERAL (SELECT {leb} AS leb) e, generate_series(1, {PER_ACCOUNT}); \
         DROP TABLE fill;"
    )
}

/// Adds `accounts` filler accounts numbered from `first` to the SQLite ledger at `path` (the
/// server stopped): the same rows as [`pg_fill_sql`].
pub fn sqlite_fill(path: &Path, first: u64, accounts: u64) -> Res<()> {
    let mut conn = rusqlite::Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
    let tx = conn.transaction().map_err(err)?;
    {
        let mut account = tx.prepare("INSERT INTO accounts (name) VALUES (?1)").map_err(err)?;
        let mut device = tx
            .prepare("INSERT INTO devices (device_id, account, counts_as, public_key, since) VALUES (?1, ?2, ?1, ?3, 1700000000)")
            .map_err(err)?;
        let mut reservation = tx
            .prepare(
                "INSERT INTO reservations (account, request_id, archive_id, device_id, counted_as, licenses, key_digest, \
                 state, created_at, settled_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, 'confirmed', 1700000000, 1700000100)",
            )
            .map_err(err)?;
        // The SQLite ledger keeps each distinct list of entries once (`entry_sets`).
        let mut entry_set = tx.prepare("INSERT INTO entry_sets (entries) VALUES (?1)").map_err(err)?;
        let mut placement =
            tx.prepare("INSERT INTO placements (account, key_id, entry_set) VALUES (?1, ?2, ?3)").map_err(err)?;
        let bytes16 = |seed: u64| -> [u8; 16] {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&mix(seed).to_le_bytes());
            b[8..].copy_from_slice(&mix(seed ^ 0x5555_5555_5555_5555).to_le_bytes());
            b
        };
        let bytes32 = |seed: u64| -> [u8; 32] { [bytes16(seed), bytes16(!seed)].concat().try_into().expect("32") };
        for n in first..first + accounts {
            account.execute([format!("filler-{n}")]).map_err(err)?;
            let id = tx.last_insert_rowid();
            let salt = 0xF111_0000_0000_0000 ^ (n << 24);
            let (origin_pk, device_pk) = (bytes32(salt ^ 1), bytes32(salt ^ 2));
            let (origin, dev) = (protocol::device_id_of(&origin_pk), protocol::device_id_of(&device_pk));
            device.execute(rusqlite::params![origin.as_slice(), id, origin_pk.as_slice()]).map_err(err)?;
            device.execute(rusqlite::params![dev.as_slice(), id, device_pk.as_slice()]).map_err(err)?;
            reservation
                .execute(rusqlite::params![
                    id,
                    bytes16(salt ^ 3).as_slice(),
                    bytes16(salt ^ 4).as_slice(),
                    dev.as_slice(),
                    PER_ACCOUNT as i64,
                    bytes32(salt ^ 5).as_slice()
                ])
                .map_err(err)?;
            let r = tx.last_insert_rowid();
            let mut entries = Vec::with_capacity(40);
            for d in [origin, dev] {
                license_backup::service::ledger::Entry { device: d, reservation: r }.encode(&mut entries);
            }
            entry_set.execute([entries.as_slice()]).map_err(err)?;
            let set = tx.last_insert_rowid();
            for i in 0..PER_ACCOUNT {
                placement.execute(rusqlite::params![id, bytes16(salt ^ (i << 3) ^ 7).as_slice(), set]).map_err(err)?;
            }
        }
    }
    tx.commit().map_err(err)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(err)?;
    Ok(())
}

/// The stores (one device each) and archives of `n` accounts, made through `server`:
/// (token, account, archive path).
fn account_archives(
    opts: &Opts,
    server: &BenchServer,
    accounts: &[(String, String)],
    scratch: &Path,
) -> Res<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for (j, (token, account)) in accounts.iter().enumerate() {
        let stores = opts.dir.join("fixtures").join(format!("account-stores-v{FIXTURE_VERSION}")).join(j.to_string());
        if !stores.join("READY").exists() {
            run_child(&["populate", &stores.display().to_string(), "1000"])?;
            std::fs::write(stores.join("READY"), b"").map_err(err)?;
        }
        let usb = scratch.join(format!("usb-{account}"));
        fresh_dir(&usb)?;
        let store = stores.join("store.db").display().to_string();
        run_child(&["remote-backup", &store, &server.url, token, &server.ca, &usb.display().to_string()])?;
        out.push((token.clone(), account.clone(), usb.join(archive::ARCHIVE_FILE_NAME).display().to_string()));
    }
    Ok(out)
}

/// Rows and figures of the ledger-scale measurements.
pub struct Measured {
    pub rows: Vec<Row>,
    pub figures: Vec<(String, f64, &'static str)>,
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// 32 clients spread over each of `opts.accounts` accounts, each ledger (PostgreSQL: 2
/// instances on one database; SQLite: 1 instance); every account audited after the load.
/// A table row of an authorization load through PostgreSQL (2 instances) beside the same load
/// through SQLite (1 instance): rate and latency of each, `authorize-load`'s JSON.
pub fn authorization_row(figure: String, pg: &Value, sq: &Value) -> Row {
    Row {
        figure,
        value: format!(
            "{:.0}/s, p50 {:.1} ms, p99 {:.1} ms ({} failed; audit = grants)",
            f(pg, "rate"),
            f(pg, "latency_p50_ms"),
            f(pg, "latency_p99_ms"),
            pg["failed"].as_u64().unwrap_or(0)
        ),
        baseline: format!(
            "{:.0}/s, p50 {:.1} ms, p99 {:.1} ms SQLite (1 instance)",
            f(sq, "rate"),
            f(sq, "latency_p50_ms"),
            f(sq, "latency_p99_ms")
        ),
        ratio: Some(f(pg, "rate") / f(sq, "rate")),
        target: String::new(),
    }
}

pub fn accounts(opts: &Opts, bin: &Path, cluster: &pg::PgCluster, scratch: &Path) -> Res<Measured> {
    let clients = 32usize;
    let mut m = Measured { rows: Vec::new(), figures: Vec::new() };
    let mut got: BTreeMap<(&str, usize), Value> = BTreeMap::new();
    for ledger in ["sqlite", "postgres"] {
        for &n in &opts.accounts {
            let env = if ledger == "postgres" {
                vec![("LB_SERVICE_LEDGER".to_string(), cluster.create_database(&format!("accounts{n}")))]
            } else {
                vec![]
            };
            let names: Vec<(String, String)> =
                (0..n).map(|j| (format!("bench-account-token-{j}"), format!("acct{j}"))).collect();
            let server = BenchServer::start_accounts(bin, &opts.dir.join("server"), &env, &names)?;
            let second = if ledger == "postgres" { Some(server.another()?) } else { None };
            fresh_dir(scratch)?;
            let made = account_archives(opts, &server, &names, scratch)?;
            let urls = match &second {
                Some(b) => format!("{},{}", server.url, b.url),
                None => server.url.clone(),
            };
            let tokens: Vec<&str> = made.iter().map(|x| x.0.as_str()).collect();
            let archives: Vec<&str> = made.iter().map(|x| x.2.as_str()).collect();
            let load = run_child(&[
                "authorize-load",
                &urls,
                &tokens.join(","),
                &server.ca,
                &archives.join(","),
                &opts.auth_seconds.to_string(),
                &clients.to_string(),
                "confirm",
            ])?;
            let mut confirmed = 0;
            for (_, account, _) in &made {
                let audit = server.audit_account(account)?;
                if audit["pending"].as_u64() != Some(0) {
                    return Err(format!("{ledger} audit of {account} after the load: {audit}"));
                }
                confirmed += audit["confirmed"].as_u64().unwrap_or(0);
            }
            let granted = load["authorized"].as_u64().unwrap_or(0);
            if confirmed != granted {
                return Err(format!(
                    "{ledger}, {n} accounts: {confirmed} confirmed in the ledger for {granted} grants"
                ));
            }
            got.insert((ledger, n), load);
        }
    }
    for &n in &opts.accounts {
        let (sq, pg) = (&got[&("sqlite", n)], &got[&("postgres", n)]);
        for (ledger, v) in [("pg", pg), ("sqlite", sq)] {
            m.figures.push((
                format!("server.{ledger}.authorizations_1k.32_clients.{n}_accounts.rate"),
                f(v, "rate"),
                "authorizations/s",
            ));
            m.figures.push((
                format!("server.{ledger}.authorizations_1k.32_clients.{n}_accounts.p50"),
                f(v, "latency_p50_ms"),
                "ms",
            ));
            m.figures.push((
                format!("server.{ledger}.authorizations_1k.32_clients.{n}_accounts.p99"),
                f(v, "latency_p99_ms"),
                "ms",
            ));
        }
        m.rows.push(authorization_row(
            format!("authorizations/s, 1,000 licenses, 32 clients over {n} account(s), PostgreSQL (2 instances)"),
            pg,
            sq,
        ));
    }
    Ok(m)
}

/// One client's authorization latency in a ledger grown to each of `opts.ledger_sizes`
/// placements, each ledger; the ratio of the largest to the smallest size.
pub fn ledger_sizes(opts: &Opts, bin: &Path, cluster: &pg::PgCluster, scratch: &Path) -> Res<Measured> {
    let mut m = Measured { rows: Vec::new(), figures: Vec::new() };
    let mut sizes = opts.ledger_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let Some((&smallest, _)) = sizes.split_first() else { return Ok(m) };
    let fx = fixture(opts, 1_000)?;
    let mut got: BTreeMap<(&str, u64), Value> = BTreeMap::new();
    for ledger in ["sqlite", "postgres"] {
        let db = "scale";
        let env = if ledger == "postgres" {
            vec![("LB_SERVICE_LEDGER".to_string(), cluster.create_database(db))]
        } else {
            vec![]
        };
        let mut server = BenchServer::start_with(bin, &opts.dir.join("server"), &env)?;
        fresh_dir(scratch)?;
        let usb = scratch.join("usb");
        std::fs::create_dir_all(&usb).map_err(err)?;
        let store = fx.join("store.db").display().to_string();
        run_child(&["remote-backup", &store, &server.url, &server.token, &server.ca, &usb.display().to_string()])?;
        let archive = usb.join(archive::ARCHIVE_FILE_NAME).display().to_string();
        let mut filled = 0u64; // filler accounts so far
        for &size in &sizes {
            let accounts = size.div_ceil(PER_ACCOUNT).saturating_sub(filled);
            let started = Instant::now();
            if ledger == "postgres" {
                cluster.psql(db, &pg_fill_sql(filled + 1, accounts));
                cluster.psql(db, "VACUUM (ANALYZE) placements, reservations, devices, accounts");
            } else {
                let (config, token, ca) = (server.config.clone(), server.token.clone(), server.ca.clone());
                drop(server);
                let path = config.parent().ok_or("the config's folder")?.join("ledger.db");
                sqlite_fill(&path, filled + 1, accounts)?;
                server = BenchServer::launch(bin, &config, &env, token, ca)?;
            }
            let fill_s = started.elapsed().as_secs_f64();
            filled += accounts;
            let rows = if ledger == "postgres" {
                cluster.psql(db, "SELECT count(*) FROM placements").parse::<u64>().map_err(err)?
            } else {
                let path = server.config.parent().ok_or("the config's folder")?.join("ledger.db");
                let conn = rusqlite::Connection::open(path).map_err(err)?;
                conn.query_row("SELECT count(*) FROM placements", [], |r| r.get::<_, i64>(0)).map_err(err)? as u64
            };
            // The service reads the pre-filled rows as its own.
            let audit = server.audit_account("filler-1")?;
            if audit["licenses"].as_u64() != Some(PER_ACCOUNT) || audit["placements"].as_u64() != Some(2 * PER_ACCOUNT)
            {
                return Err(format!("{ledger}: the pre-filled account audits as {audit}"));
            }
            eprintln!("bench: {ledger} ledger of {rows} placement rows (+{accounts} accounts in {fill_s:.1} s)");
            let args = |secs: f64| {
                vec![
                    "authorize-load".to_string(),
                    server.url.clone(),
                    server.token.clone(),
                    server.ca.clone(),
                    archive.clone(),
                    secs.to_string(),
                    "1".to_string(),
                    SIZE_MODE.to_string(),
                ]
            };
            let warm: Vec<String> = args(1.0);
            run_child(&warm.iter().map(String::as_str).collect::<Vec<_>>())?;
            let measured: Vec<String> = args(opts.auth_seconds * 2.0);
            let mut load = run_child(&measured.iter().map(String::as_str).collect::<Vec<_>>())?;
            load["rows"] = json!(rows);
            load["fill_s"] = json!(fill_s);
            got.insert((ledger, size), load);
        }
        drop(server);
        if ledger == "postgres" {
            cluster.psql("postgres", &format!("DROP DATABASE {db}"));
        }
    }
    for ledger in ["postgres", "sqlite"] {
        let base = &got[&(ledger, smallest)];
        let short = if ledger == "postgres" { "pg" } else { "sqlite" };
        for &size in &sizes {
            let v = &got[&(ledger, size)];
            let nn = fmt_n(size);
            m.figures.push((format!("server.{short}.ledger_{nn}.authorize_1k.p50"), f(v, "latency_p50_ms"), "ms"));
            m.figures.push((format!("server.{short}.ledger_{nn}.authorize_1k.p99"), f(v, "latency_p99_ms"), "ms"));
            m.figures.push((format!("server.{short}.ledger_{nn}.fill"), f(v, "fill_s"), "s"));
            if size == smallest {
                continue;
            }
            let (p50, p99) = (
                f(v, "latency_p50_ms") / f(base, "latency_p50_ms"),
                f(v, "latency_p99_ms") / f(base, "latency_p99_ms"),
            );
            m.figures.push((format!("server.{short}.ledger_{nn}.authorize_1k.p50_ratio"), p50, "x"));
            m.figures.push((format!("server.{short}.ledger_{nn}.authorize_1k.p99_ratio"), p99, "x"));
            m.rows.push(Row {
                figure: format!(
                    "authorization latency, 1,000 licenses, ledger of {} placements, {} (1 client)",
                    v["rows"],
                    if ledger == "postgres" { "PostgreSQL" } else { "SQLite" }
                ),
                value: format!(
                    "p50 {:.1} ms, p99 {:.1} ms ({} authorizations)",
                    f(v, "latency_p50_ms"),
                    f(v, "latency_p99_ms"),
                    v["authorized"]
                ),
                baseline: format!(
                    "p50 {:.1} ms, p99 {:.1} ms at {} placements (p99 ratio {p99:.2}x)",
                    f(base, "latency_p50_ms"),
                    f(base, "latency_p99_ms"),
                    base["rows"]
                ),
                ratio: Some(p50),
                target: "<= 1.5x".into(),
            });
        }
    }
    Ok(m)
}
