//! A second, independent writer of license-backup archives, made from `docs/archive-format.md`
//! with other crates (hpke, chacha20poly1305, sha2) rather than the library's writer: tests and
//! fuzz targets use it to make any archive a device (or an attacker with a device of their own)
//! could make: version 1, version 2, wrong commitments, another device's name on the header.
//! Shared by the fuzz harness and `core/tests` (through `core/tests/common`).
#![allow(dead_code)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hpke::aead::ChaCha20Poly1305 as HpkeChaCha;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeS, Serializable};
use sha2::{Digest, Sha256};

/// Version-1 header length and authenticated prefix.
pub const V1_HEADER_LEN: usize = 176;
const V1_AUTH_LEN: usize = 80;
/// Version-2 header length and authenticated prefix.
pub const V2_HEADER_LEN: usize = 280;
const V2_AUTH_LEN: usize = 184;
const FRAME_LEN: usize = 21;

/// The operating system's random numbers, in the shape HPKE wants.
struct OsRng;

impl hpke::rand_core::RngCore for OsRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).expect("random numbers");
    }
}

impl hpke::rand_core::CryptoRng for OsRng {}

/// Fresh random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("random numbers");
    out
}

/// The first 16 bytes of SHA-256 (device IDs, key fingerprints).
pub fn fingerprint(bytes: &[u8]) -> [u8; 16] {
    Sha256::digest(bytes)[..16].try_into().unwrap()
}

/// An X25519 device key pair, derived from a seed as the library derives a device's.
pub struct DeviceKey {
    private: <X25519HkdfSha256 as Kem>::PrivateKey,
    /// The raw public key.
    pub public: [u8; 32],
}

impl DeviceKey {
    /// The key pair of `seed` (RFC 9180 DeriveKeyPair).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let (private, public) = X25519HkdfSha256::derive_keypair(seed);
        DeviceKey { private, public: public.to_bytes().into() }
    }

    /// A fresh key pair.
    pub fn generate() -> Self {
        Self::from_seed(&random())
    }

    /// The device ID: the fingerprint of the public key.
    pub fn id(&self) -> [u8; 16] {
        fingerprint(&self.public)
    }

    fn pair(&self) -> (<X25519HkdfSha256 as Kem>::PrivateKey, <X25519HkdfSha256 as Kem>::PublicKey) {
        (self.private.clone(), <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&self.public).unwrap())
    }
}

/// Seals `secret` to `recipient` with HPKE (base mode, or auth mode as `sender`): `enc ‖
/// ciphertext`.
pub fn hpke_seal(recipient: &[u8; 32], sender: Option<&DeviceKey>, info: &[u8], aad: &[u8], secret: &[u8]) -> Vec<u8> {
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(recipient).unwrap();
    let mode = match sender {
        Some(k) => OpModeS::Auth(k.pair()),
        None => OpModeS::Base,
    };
    let (enc, ct) = hpke::single_shot_seal::<HpkeChaCha, HkdfSha256, X25519HkdfSha256, _>(
        &mode, &pk, info, secret, aad, &mut OsRng,
    )
    .unwrap();
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Opens what HPKE base mode sealed to `key` (`enc ‖ ciphertext` split in `wrapped`).
pub fn hpke_open(key: &DeviceKey, enc: &[u8], ciphertext: &[u8], info: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc).ok()?;
    hpke::single_shot_open::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
        &hpke::OpModeR::Base,
        &key.private,
        &enc,
        info,
        ciphertext,
        aad,
    )
    .ok()
}

/// A record to seal: its type (1 license, 2 end), frame key ID and plaintext.
pub struct Record {
    pub kind: u8,
    pub key_id: [u8; 16],
    pub plaintext: Vec<u8>,
}

/// A license record plaintext ("License record plaintext"): rights play + backup allowed, an
/// expiry, 7 plays, issuer `fuzz`.
pub fn license_plaintext(key_id: [u8; 16], content_key: &[u8], title: Option<&str>) -> Vec<u8> {
    let mut p = vec![1];
    p.extend_from_slice(&key_id);
    p.extend_from_slice(&(content_key.len() as u16).to_le_bytes());
    p.extend_from_slice(content_key);
    p.push(0b1001);
    p.push(1);
    p.extend_from_slice(&1_900_000_000i64.to_le_bytes());
    p.push(1);
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(&4u16.to_le_bytes());
    p.extend_from_slice(b"fuzz");
    p.extend_from_slice(&1_700_000_000i64.to_le_bytes());
    match title {
        Some(t) => {
            p.push(1);
            p.extend_from_slice(&(t.len() as u16).to_le_bytes());
            p.extend_from_slice(t.as_bytes());
        }
        None => p.push(0),
    }
    p.extend_from_slice(&[0, 0]);
    p
}

impl Record {
    /// A license record for `key_id`.
    pub fn license(key_id: [u8; 16], content_key: &[u8], title: Option<&str>) -> Record {
        Record { kind: 1, key_id, plaintext: license_plaintext(key_id, content_key, title) }
    }
}

/// Seals one record at `index` ("Records": nonce and associated data) and appends it.
pub fn seal_record(out: &mut Vec<u8>, archive_id: &[u8; 16], data_key: &[u8; 32], index: u64, r: &Record) {
    let aead = ChaCha20Poly1305::new(Key::from_slice(data_key));
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&index.to_be_bytes());
    let mut aad = Vec::with_capacity(41);
    aad.extend_from_slice(archive_id);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(r.kind);
    aad.extend_from_slice(&r.key_id);
    let ct = aead.encrypt(Nonce::from_slice(&nonce), Payload { msg: &r.plaintext, aad: &aad }).expect("seal");
    out.push(r.kind);
    out.extend_from_slice(&r.key_id);
    out.extend_from_slice(&(ct.len() as u32).to_le_bytes());
    out.extend_from_slice(&ct);
}

/// Seals `records` in order, then (with `end`) a correct end record.
pub fn seal_all(archive_id: &[u8; 16], data_key: &[u8; 32], records: &[Record], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        seal_record(&mut out, archive_id, data_key, i as u64, r);
    }
    if end {
        let n = records.len() as u64;
        let mut plain = n.to_le_bytes().to_vec();
        plain.extend_from_slice(&0u64.to_le_bytes());
        seal_record(&mut out, archive_id, data_key, n, &Record { kind: 2, key_id: [0; 16], plaintext: plain });
    }
    out
}

/// What a version-2 header commits to: (license count, key-ID digest, record digest).
pub type Commitment = (u64, [u8; 32], [u8; 32]);

/// The digest of key IDs, in order, as a version-2 header commits to it.
pub fn key_ids_digest<'a>(key_ids: impl IntoIterator<Item = &'a [u8; 16]>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"license-backup/v2/key-ids");
    for k in key_ids {
        h.update(k);
    }
    h.finalize().into()
}

/// The commitment to sealed records (the bytes after the header): the license frames' count
/// and key IDs, and every byte.
pub fn commitment_of(records: &[u8]) -> Commitment {
    let mut ids = Vec::new();
    let mut pos = 0;
    while pos + FRAME_LEN <= records.len() {
        if records[pos] == 1 {
            ids.push(<[u8; 16]>::try_from(&records[pos + 1..pos + 17]).unwrap());
        }
        pos += FRAME_LEN + u32::from_le_bytes(records[pos + 17..pos + 21].try_into().unwrap()) as usize;
    }
    let mut h = Sha256::new();
    h.update(b"license-backup/v2/records");
    h.update(records);
    (ids.len() as u64, key_ids_digest(&ids), h.finalize().into())
}

fn prefix(
    version: u16,
    header_len: usize,
    archive_id: &[u8; 16],
    origin_device: &[u8; 16],
    service: &[u8; 32],
) -> Vec<u8> {
    let mut h = Vec::with_capacity(header_len);
    h.extend_from_slice(b"LICBAKUP");
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&(header_len as u16).to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    for id in [0x0020u16, 0x0001, 0x0003, 0x0003] {
        h.extend_from_slice(&id.to_le_bytes());
    }
    h.extend_from_slice(archive_id);
    h.extend_from_slice(origin_device);
    h.extend_from_slice(&1_700_000_000i64.to_le_bytes());
    h.extend_from_slice(&fingerprint(service));
    h
}

fn checksum(h: &mut Vec<u8>) {
    let d = Sha256::digest(&h[..]);
    h.extend_from_slice(&d[..16]);
}

/// A version-1 header (base mode: anyone with the service's public key can make one, with any
/// origin device ID).
pub fn v1_header(service: &[u8; 32], origin_device: &[u8; 16], archive_id: &[u8; 16], data_key: &[u8; 32]) -> Vec<u8> {
    let mut h = prefix(1, V1_HEADER_LEN, archive_id, origin_device, service);
    assert_eq!(h.len(), V1_AUTH_LEN);
    let wrapped = hpke_seal(service, None, b"license-backup/v1/archive-key", &h.clone(), data_key);
    h.extend_from_slice(&wrapped);
    checksum(&mut h);
    assert_eq!(h.len(), V1_HEADER_LEN);
    h
}

/// A version-2 header whose data key is sealed by `sealer`, naming `origin_key` and
/// `origin_device` as its origin (normally `sealer`'s own key and ID), committing to `c`.
pub fn v2_header(
    service: &[u8; 32],
    sealer: &DeviceKey,
    origin_key: &[u8; 32],
    origin_device: &[u8; 16],
    archive_id: &[u8; 16],
    data_key: &[u8; 32],
    c: &Commitment,
) -> Vec<u8> {
    let mut h = prefix(2, V2_HEADER_LEN, archive_id, origin_device, service);
    h.extend_from_slice(origin_key);
    h.extend_from_slice(&c.0.to_le_bytes());
    h.extend_from_slice(&c.1);
    h.extend_from_slice(&c.2);
    assert_eq!(h.len(), V2_AUTH_LEN);
    let wrapped = hpke_seal(service, Some(sealer), b"license-backup/v2/archive-key", &h.clone(), data_key);
    h.extend_from_slice(&wrapped);
    checksum(&mut h);
    assert_eq!(h.len(), V2_HEADER_LEN);
    h
}

/// A complete, valid version-2 archive made by `origin` of `records`.
pub fn v2_archive(service: &[u8; 32], origin: &DeviceKey, records: &[Record]) -> Vec<u8> {
    let (archive_id, data_key) = (random(), random());
    let body = seal_all(&archive_id, &data_key, records, true);
    let mut out =
        v2_header(service, origin, &origin.public, &origin.id(), &archive_id, &data_key, &commitment_of(&body));
    out.extend_from_slice(&body);
    out
}

/// A complete, valid version-1 archive naming `origin_device` of `records`.
pub fn v1_archive(service: &[u8; 32], origin_device: &[u8; 16], records: &[Record]) -> Vec<u8> {
    let (archive_id, data_key) = (random(), random());
    let mut out = v1_header(service, origin_device, &archive_id, &data_key);
    out.extend_from_slice(&seal_all(&archive_id, &data_key, records, true));
    out
}
