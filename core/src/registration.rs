//! Device registration: a device proves to a service that it holds its key and joins the
//! caller's account, once per service; the store remembers it, so later backups need no
//! service call.

use std::path::Path;

use rusqlite::params;

use crate::clock::now_secs;
use crate::crypto;
use crate::device::DeviceKeys;
use crate::error::Result;
use crate::service::{DeviceRegistration, LicenseService, REGISTRATION_INFO, registration_aad};
use crate::sqlite::open_connection;

/// Registers `device` with the service whose key is `service_key`, unless the store at
/// `store_path` remembers having done so; then remembers it. A service error (unreachable,
/// another account) is returned as it is.
pub(crate) fn ensure_registered(
    store_path: &Path,
    service: &dyn LicenseService,
    service_key: &[u8; 32],
    device: &DeviceKeys,
) -> Result<()> {
    let fingerprint = crypto::fingerprint(service_key);
    let conn = open_connection(store_path)?;
    let known: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM registrations WHERE service_key = ?1 AND device_id = ?2)",
        params![fingerprint.as_slice(), device.id().as_slice()],
        |r| r.get(0),
    )?;
    if known {
        return Ok(());
    }
    let public_key = device.pair.public_bytes();
    let aad = registration_aad(&fingerprint, &device.id(), &public_key);
    let proof = device.pair.prove(service_key, REGISTRATION_INFO, &aad)?;
    service.register_device(&DeviceRegistration { device_id: device.id(), public_key, proof })?;
    conn.execute(
        "INSERT OR IGNORE INTO registrations (service_key, device_id, registered_at) VALUES (?1, ?2, ?3)",
        params![fingerprint.as_slice(), device.id().as_slice(), now_secs()],
    )?;
    Ok(())
}
