//! The wall clock, as the store, the archive header and the service's ledger record it.

/// The current time in seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
