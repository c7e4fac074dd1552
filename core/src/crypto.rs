//! The cryptography, in one place: random numbers, device identities, sealing content keys at
//! rest, sealing archive records, and HPKE (RFC 9180) key wrapping.
//!
//! Suites: HPKE is DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 + ChaCha20-Poly1305: base mode for
//! what the service hands a device (a restore grant), auth mode for what a device hands the
//! service (an archive's data key, a registration, an identity succession), so the service
//! knows which device made it. Records and content keys at rest are sealed with
//! ChaCha20-Poly1305.

use hkdf::Hkdf;
use hpke::aead::ChaCha20Poly1305 as HpkeChaCha;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorCode, Result};

/// Length of an HPKE encapsulated key (X25519).
pub(crate) const ENC_LEN: usize = 32;
/// Length of the AEAD tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a data key.
pub(crate) const DATA_KEY_LEN: usize = 32;
/// Length of a public key (X25519).
pub(crate) const PUBLIC_KEY_LEN: usize = 32;

/// Fills a fresh array from the operating system's random source.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}

/// The OS random source in the shape HPKE wants.
struct SysRng;

impl hpke::rand_core::RngCore for SysRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(random_array())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(random_array())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).expect("the operating system's random source failed");
    }
}

impl hpke::rand_core::CryptoRng for SysRng {}

/// The first 16 bytes of SHA-256: used for device IDs and key fingerprints.
pub(crate) fn fingerprint(bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// An X25519 key pair derived from a 32-byte secret seed, used both by devices and by the
/// embedded License Management Service.
#[derive(Clone)]
pub(crate) struct KeyPair {
    seed: Zeroizing<[u8; 32]>,
    private: <X25519HkdfSha256 as Kem>::PrivateKey,
    public: <X25519HkdfSha256 as Kem>::PublicKey,
}

impl KeyPair {
    /// A fresh key pair.
    pub(crate) fn generate() -> Self {
        Self::from_seed(random_array())
    }

    /// The key pair derived from a stored seed.
    pub(crate) fn from_seed(seed: [u8; 32]) -> Self {
        let (private, public) = X25519HkdfSha256::derive_keypair(&seed);
        KeyPair { seed: Zeroizing::new(seed), private, public }
    }

    /// Rebuilds a key pair from a stored seed slice.
    pub(crate) fn from_seed_slice(seed: &[u8]) -> Result<Self> {
        let seed: [u8; 32] =
            seed.try_into().map_err(|_| Error::new(ErrorCode::Storage, "stored key seed has the wrong length"))?;
        Ok(Self::from_seed(seed))
    }

    /// The secret seed, for persisting.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public key bytes.
    pub(crate) fn public_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(&self.public.to_bytes());
        out
    }

    /// The 16-byte identity of this key pair: a fingerprint of its public key.
    pub(crate) fn id(&self) -> [u8; 16] {
        fingerprint(&self.public_bytes())
    }

    /// A symmetric key derived from the seed for a named purpose (HKDF-SHA256).
    pub(crate) fn derive_key(&self, purpose: &[u8]) -> SealingKey {
        let hk = Hkdf::<Sha256>::new(Some(b"license-backup/v1"), self.seed.as_slice());
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(purpose, okm.as_mut_slice()).expect("32 bytes is a valid HKDF length");
        SealingKey::new(&okm)
    }

    /// Opens an HPKE-wrapped secret addressed to this key pair.
    pub(crate) fn unwrap(&self, wrapped: &WrappedKey, info: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&wrapped.enc)
            .map_err(|_| Error::new(ErrorCode::WrongKey, "malformed encapsulated key"))?;
        hpke::single_shot_open::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &self.private,
            &enc,
            info,
            &wrapped.ciphertext,
            aad,
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::new(ErrorCode::WrongKey, "the wrapped key cannot be opened with this key"))
    }

    /// Opens an HPKE auth-mode secret addressed to this key pair by the holder of the private
    /// key of `sender` (a raw X25519 public key): it opens only if that key pair sealed it.
    pub(crate) fn unwrap_from(
        &self,
        sender: &[u8; PUBLIC_KEY_LEN],
        wrapped: &WrappedKey,
        info: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let sender = usable_public_key(sender)?;
        let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&wrapped.enc)
            .map_err(|_| Error::new(ErrorCode::WrongKey, "malformed encapsulated key"))?;
        hpke::single_shot_open::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Auth(sender),
            &self.private,
            &enc,
            info,
            &wrapped.ciphertext,
            aad,
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::new(ErrorCode::WrongKey, "the sealed secret does not open with these keys"))
    }

    /// Seals `secret` with HPKE auth mode to `recipient`, as this key pair: only the recipient
    /// can open it, and opening it proves this key pair sealed it (RFC 9180, section 5.1.3).
    pub(crate) fn wrap_as(
        &self,
        recipient: &[u8; PUBLIC_KEY_LEN],
        secret: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<WrappedKey> {
        let pk = usable_public_key(recipient)?;
        let mode = OpModeS::Auth((self.private.clone(), self.public.clone()));
        let (enc, ciphertext) = hpke::single_shot_seal::<HpkeChaCha, HkdfSha256, X25519HkdfSha256, _>(
            &mode,
            &pk,
            info,
            secret,
            aad,
            &mut SysRng,
        )
        .map_err(|e| Error::internal(format!("HPKE seal failed: {e}")))?;
        Ok(WrappedKey { enc: enc.to_bytes().to_vec(), ciphertext })
    }

    /// A proof that this key pair's holder made a statement (`aad`, under the label `info`),
    /// checkable only by `recipient`: an HPKE auth-mode seal of nothing (its 16-byte tag).
    pub(crate) fn prove(&self, recipient: &[u8; PUBLIC_KEY_LEN], info: &[u8], aad: &[u8]) -> Result<WrappedKey> {
        self.wrap_as(recipient, &[], info, aad)
    }

    /// Checks a proof made with [`KeyPair::prove`] by the holder of `sender`'s private key.
    pub(crate) fn check_proof(
        &self,
        sender: &[u8; PUBLIC_KEY_LEN],
        proof: &WrappedKey,
        info: &[u8],
        aad: &[u8],
    ) -> Result<()> {
        let opened = self.unwrap_from(sender, proof, info, aad)?;
        if opened.is_empty() { Ok(()) } else { Err(Error::new(ErrorCode::WrongKey, "malformed proof")) }
    }
}

/// The X25519 public keys of small order (and their non-canonical encodings): a Diffie-Hellman
/// result with any of them is all zeros, whatever the private key, so a key agreement with
/// them proves nothing. RFC 7748 section 6.1 and the list at <https://cr.yp.to/ecdh.html>.
const SMALL_ORDER_KEYS: [[u8; 32]; 7] = [
    [0; 32],
    {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
        0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44,
        0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ],
    // p - 1, p, p + 1 (p = 2^255 - 19), as read with the top bit cleared.
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
];

/// Whether a raw X25519 public key can identify a device or receive a secret: `false` for the
/// keys of small order (with the top bit, which X25519 ignores, either way). HPKE refuses them
/// too (an all-zero shared secret); checking first gives a clear error before any work.
pub(crate) fn is_usable_public_key(key: &[u8; PUBLIC_KEY_LEN]) -> bool {
    let mut masked = *key;
    masked[31] &= 0x7f;
    !SMALL_ORDER_KEYS.contains(&masked)
}

fn usable_public_key(key: &[u8; PUBLIC_KEY_LEN]) -> Result<<X25519HkdfSha256 as Kem>::PublicKey> {
    if !is_usable_public_key(key) {
        return Err(Error::new(ErrorCode::WrongKey, "a public key of small order identifies nobody"));
    }
    <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(key)
        .map_err(|_| Error::new(ErrorCode::WrongKey, "malformed public key"))
}

/// A secret sealed with HPKE to a public key: the encapsulated key and the ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The HPKE encapsulated key (32 bytes for X25519).
    pub enc: Vec<u8>,
    /// The sealed secret (the secret plus a 16-byte tag).
    pub ciphertext: Vec<u8>,
}

/// Seals a secret with HPKE base mode to a raw X25519 public key.
pub(crate) fn wrap_to(public_key: &[u8; PUBLIC_KEY_LEN], secret: &[u8], info: &[u8], aad: &[u8]) -> Result<WrappedKey> {
    let pk = usable_public_key(public_key)?;
    let (enc, ciphertext) = hpke::single_shot_seal::<HpkeChaCha, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        info,
        secret,
        aad,
        &mut SysRng,
    )
    .map_err(|e| Error::internal(format!("HPKE seal failed: {e}")))?;
    Ok(WrappedKey { enc: enc.to_bytes().to_vec(), ciphertext })
}

/// A ChaCha20-Poly1305 key (RFC 8439), computed by `ring`.
///
/// This library seals and opens millions of short messages (a 16-byte content key, a record of
/// ~170 bytes): `ring`'s assembly computes the Poly1305 key block and the message blocks
/// together, where the RustCrypto crates compute one block at a time; it seals and opens them
/// 2–4× faster (docs/performance.md). The bytes are the same: archives and stores made with
/// either read with the other.
///
/// `ring` keeps the key schedule inline in its key type (plain words, no heap, no `Drop`) and
/// offers no way to wipe it: this type keeps it in a box of its own and overwrites it with
/// zeros when dropped. Copies `ring` makes on the stack while building it are not wiped.
pub(crate) struct SealingKey(Box<std::mem::ManuallyDrop<ring::aead::LessSafeKey>>);

impl Drop for SealingKey {
    fn drop(&mut self) {
        let key: &mut std::mem::ManuallyDrop<ring::aead::LessSafeKey> = &mut self.0;
        let ptr = (key as *mut std::mem::ManuallyDrop<ring::aead::LessSafeKey>).cast::<u8>();
        // SAFETY: `ptr` points at the boxed key, valid for its size and exclusively borrowed.
        // `LessSafeKey` (ring 0.17) is plain data: its key words and a `&'static` algorithm, no
        // heap and no `Drop`, and it is never read again (`ManuallyDrop`: not dropped either),
        // so overwriting its bytes leaks nothing and nothing observes the zeroed value. The
        // volatile writes are not elided.
        unsafe {
            for i in 0..std::mem::size_of::<ring::aead::LessSafeKey>() {
                std::ptr::write_volatile(ptr.add(i), 0);
            }
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

fn ring_nonce(nonce: &[u8; 12]) -> ring::aead::Nonce {
    ring::aead::Nonce::assume_unique_for_key(*nonce)
}

impl SealingKey {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
            .expect("a 32-byte key is a valid ChaCha20-Poly1305 key");
        SealingKey(Box::new(std::mem::ManuallyDrop::new(ring::aead::LessSafeKey::new(key))))
    }

    /// Seals with an explicit 12-byte nonce (the tests' reference for the in-place forms).
    #[cfg(test)]
    pub(crate) fn seal_with_nonce(&self, nonce: &[u8; 12], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = self.seal_detached(nonce, &mut out, aad);
        out.extend_from_slice(&tag);
        out
    }

    /// Seals `buf` in place with an explicit nonce and returns the tag (for records laid out
    /// in a larger buffer with room for their tag, as a backup writes them in batches).
    pub(crate) fn seal_detached(&self, nonce: &[u8; 12], buf: &mut [u8], aad: &[u8]) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(ring_nonce(nonce), ring::aead::Aad::from(aad), buf)
            .expect("ChaCha20-Poly1305 sealing of a bounded message cannot fail");
        tag.as_ref().try_into().expect("a 16-byte tag")
    }

    /// Opens `buf` in place with its detached `tag`: on success it holds the plaintext (which
    /// the caller must wipe or overwrite); on failure `false` is returned and what `buf` holds
    /// is unspecified.
    pub(crate) fn open_detached(&self, nonce: &[u8; 12], buf: &mut [u8], aad: &[u8], tag: &[u8; TAG_LEN]) -> bool {
        self.0
            .open_in_place_separate_tag(ring_nonce(nonce), ring::aead::Aad::from(aad), (*tag).into(), buf, 0..)
            .is_ok()
    }

    /// Opens `buf` (ciphertext and tag) in place: on success it holds the plaintext (the tag
    /// removed) and the caller must wipe it; on failure `false` is returned and what `buf`
    /// holds is unspecified.
    pub(crate) fn open_in_place(&self, nonce: &[u8; 12], buf: &mut Vec<u8>, aad: &[u8]) -> bool {
        if buf.len() < TAG_LEN {
            return false;
        }
        let split = buf.len() - TAG_LEN;
        let tag: [u8; TAG_LEN] = buf[split..].try_into().expect("16 bytes");
        buf.truncate(split);
        self.open_detached(nonce, buf, aad, &tag)
    }

    /// Opens a ciphertext (the sealed bytes with their 16-byte tag appended) sealed with `nonce`.
    pub(crate) fn open_with_nonce(&self, nonce: &[u8; 12], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let mut buf = ciphertext.to_vec();
        if self.open_in_place(nonce, &mut buf, aad) {
            Some(buf)
        } else {
            buf.zeroize();
            None
        }
    }

    /// [`SealingKey::seal_random_from`] with a nonce from the operating system.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(crate) fn seal_random(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + plaintext.len() + TAG_LEN);
        self.seal_into(&random_array(), plaintext, aad, &mut out);
        out
    }

    /// Seals with a random nonce drawn from `nonces`, which is prepended to the output (for
    /// content keys at rest): many keys in a row without a system call for each.
    pub(crate) fn seal_random_from(&self, nonces: &mut NoncePool, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + plaintext.len() + TAG_LEN);
        self.seal_into(&nonces.next(), plaintext, aad, &mut out);
        out
    }

    /// Appends to `out` what [`SealingKey::seal_random_from`] returns
    /// (for filling one buffer with many sealed keys).
    pub(crate) fn seal_random_into(&self, nonces: &mut NoncePool, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        self.seal_into(&nonces.next(), plaintext, aad, out);
    }

    /// Appends nonce, ciphertext and tag to `out`.
    fn seal_into(&self, nonce: &[u8; 12], plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        let tag = self.seal_detached(nonce, &mut out[start + 12..], aad);
        out.extend_from_slice(&tag);
    }

    /// Splits the output of [`SealingKey::seal_random_from`] into its nonce, ciphertext and tag;
    /// `None` if it is too short to be one.
    pub(crate) fn split_random(sealed: &[u8]) -> Option<(&[u8; 12], &[u8], &[u8; TAG_LEN])> {
        if sealed.len() < 12 + TAG_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        Some((nonce.try_into().ok()?, ct, tag.try_into().ok()?))
    }

    /// Opens the output of [`SealingKey::seal_random_from`].
    pub(crate) fn open_random(&self, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + TAG_LEN {
            return None;
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: &[u8; 12] = nonce.try_into().ok()?;
        self.open_with_nonce(nonce, ct, aad).map(Zeroizing::new)
    }
}

/// Random 12-byte nonces, fetched from the operating system's random source 256 at a time
/// (one system call instead of one per sealed content key: ~5% of a restore). Each nonce is
/// used once and wiped; a pool belongs to one operation on one thread and is never shared.
pub(crate) struct NoncePool {
    buf: Zeroizing<[u8; NONCE_POOL_LEN]>,
    pos: usize,
    end: usize,
    /// Nonces still expected (sizes the next refill, so sealing one key fetches one nonce).
    expected: usize,
}

const NONCE_POOL_LEN: usize = 12 * 256;

impl NoncePool {
    /// An empty pool for about `expected` nonces; the first [`NoncePool::next`] fills it.
    pub(crate) fn new(expected: usize) -> Self {
        NoncePool { buf: Zeroizing::new([0u8; NONCE_POOL_LEN]), pos: 0, end: 0, expected: expected.max(1) }
    }

    /// The next fresh random nonce.
    pub(crate) fn next(&mut self) -> [u8; 12] {
        if self.pos == self.end {
            // As many as are still expected (all 256 once more than expected were drawn).
            let want = if self.expected == 0 { NONCE_POOL_LEN / 12 } else { self.expected.min(NONCE_POOL_LEN / 12) };
            self.end = 12 * want;
            getrandom::fill(&mut self.buf[..self.end]).expect("the operating system's random source failed");
            self.pos = 0;
        }
        self.expected = self.expected.saturating_sub(1);
        let mut nonce = [0u8; 12];
        let slot = &mut self.buf[self.pos..self.pos + 12];
        nonce.copy_from_slice(slot);
        slot.fill(0);
        self.pos += 12;
        nonce
    }
}

/// A fresh random data key for one archive.
pub(crate) fn new_data_key() -> Zeroizing<[u8; DATA_KEY_LEN]> {
    Zeroizing::new(random_array())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpke_wrap_round_trip_and_wrong_key() {
        let alice = KeyPair::generate();
        let mallory = KeyPair::generate();
        let wrapped = wrap_to(&alice.public_bytes(), b"secret data key", b"info", b"aad").unwrap();
        assert_eq!(wrapped.enc.len(), ENC_LEN);
        let opened = alice.unwrap(&wrapped, b"info", b"aad").unwrap();
        assert_eq!(opened.as_slice(), b"secret data key");
        assert_eq!(mallory.unwrap(&wrapped, b"info", b"aad").unwrap_err().code(), ErrorCode::WrongKey);
        assert!(alice.unwrap(&wrapped, b"info", b"other aad").is_err());
    }

    #[test]
    fn auth_mode_opens_only_as_sealed_by_the_named_sender() {
        let (service, device, mallory) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let sealed = device.wrap_as(&service.public_bytes(), b"data key", b"info", b"aad").unwrap();
        assert_eq!(
            service.unwrap_from(&device.public_bytes(), &sealed, b"info", b"aad").unwrap().as_slice(),
            b"data key"
        );
        // Another sender's key, other associated data or info, base mode: none opens it.
        assert!(service.unwrap_from(&mallory.public_bytes(), &sealed, b"info", b"aad").is_err());
        assert!(service.unwrap_from(&device.public_bytes(), &sealed, b"info", b"other").is_err());
        assert!(service.unwrap_from(&device.public_bytes(), &sealed, b"other", b"aad").is_err());
        assert!(service.unwrap(&sealed, b"info", b"aad").is_err());
        // Mallory cannot make what opens as the device's.
        let forged = mallory.wrap_as(&service.public_bytes(), b"data key", b"info", b"aad").unwrap();
        assert!(service.unwrap_from(&device.public_bytes(), &forged, b"info", b"aad").is_err());
        let proof = device.prove(&service.public_bytes(), b"register", b"statement").unwrap();
        service.check_proof(&device.public_bytes(), &proof, b"register", b"statement").unwrap();
        assert!(service.check_proof(&device.public_bytes(), &proof, b"register", b"another").is_err());
        assert!(service.check_proof(&device.public_bytes(), &sealed, b"info", b"aad").is_err(), "not empty");
    }

    /// Every key of small order is refused by this library before any work, and the `hpke`
    /// crate refuses each too (an all-zero Diffie-Hellman result, RFC 9180 section 7.1.4):
    /// with the check removed, sealing to them or opening from them would still fail.
    #[test]
    fn small_order_keys_are_refused_here_and_by_hpke() {
        let device = KeyPair::generate();
        for key in SMALL_ORDER_KEYS {
            for top in [0u8, 0x80] {
                let mut key = key;
                key[31] |= top;
                assert!(!is_usable_public_key(&key), "{key:02x?}");
                assert!(wrap_to(&key, b"s", b"i", b"a").is_err());
                assert!(device.wrap_as(&key, b"s", b"i", b"a").is_err());
                let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&key).unwrap();
                let base = hpke::single_shot_seal::<HpkeChaCha, HkdfSha256, X25519HkdfSha256, _>(
                    &OpModeS::Base,
                    &pk,
                    b"i",
                    b"s",
                    b"a",
                    &mut SysRng,
                );
                assert!(base.is_err(), "hpke seals to {key:02x?}");
                let sealed = device.wrap_as(&device.public_bytes(), b"s", b"i", b"a").unwrap();
                let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&sealed.enc).unwrap();
                let opened = hpke::single_shot_open::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
                    &OpModeR::Auth(pk),
                    &device.private,
                    &enc,
                    b"i",
                    &sealed.ciphertext,
                    b"a",
                );
                assert!(opened.is_err(), "hpke opens as sent by {key:02x?}");
            }
        }
        assert!(is_usable_public_key(&device.public_bytes()));
    }

    #[test]
    fn seeds_derive_the_same_pair() {
        let a = KeyPair::generate();
        let b = KeyPair::from_seed(*a.seed());
        assert_eq!(a.public_bytes(), b.public_bytes());
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn in_place_sealing_matches_and_detects_tamper() {
        let key = KeyPair::generate().derive_key(b"test");
        let nonce = [3u8; 12];
        let mut buf = b"record body".to_vec();
        let tag = key.seal_detached(&nonce, &mut buf, b"ad");
        let mut detached = buf.clone();
        buf.extend_from_slice(&tag);
        assert_eq!(buf, key.seal_with_nonce(&nonce, b"record body", b"ad"));
        let ciphertext = detached.clone();
        assert!(!key.open_detached(&nonce, &mut detached, b"other ad", &tag));
        let mut detached = ciphertext;
        assert!(key.open_detached(&nonce, &mut detached, b"ad", &tag));
        assert_eq!(detached, b"record body");
        let sealed = buf.clone();
        assert!(!key.open_in_place(&nonce, &mut buf, b"other ad"));
        buf = sealed;
        assert!(key.open_in_place(&nonce, &mut buf, b"ad"));
        assert_eq!(buf, b"record body");
        let mut short = vec![0u8; TAG_LEN - 1];
        assert!(!key.open_in_place(&nonce, &mut short, b"ad"));
    }

    /// RFC 8439, section 2.8.2: the AEAD_CHACHA20_POLY1305 test vector.
    #[test]
    fn sealing_matches_rfc_8439() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47];
        let aad = [0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7];
        let plaintext: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for \
            the future, sunscreen would be it.";
        let expected = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca967128\
            2fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675\
            945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b61161ae10b594f09e26a7e902ecbd0600691";
        let sealed = SealingKey::new(&key).seal_with_nonce(&nonce, plaintext, &aad);
        let hex: String = sealed.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert_eq!(SealingKey::new(&key).open_with_nonce(&nonce, &sealed, &aad).unwrap(), plaintext);
    }

    #[test]
    fn pooled_nonces_are_fresh_and_seal_like_random_ones() {
        let key = KeyPair::generate().derive_key(b"test");
        let mut pool = NoncePool::new(300);
        let nonces: std::collections::HashSet<[u8; 12]> = (0..1000).map(|_| pool.next()).collect();
        assert_eq!(nonces.len(), 1000, "a nonce came twice (across several refills)");
        let sealed = key.seal_random_from(&mut pool, b"content key", b"ad");
        assert_eq!(sealed.len(), 12 + 11 + TAG_LEN);
        assert_eq!(key.open_random(&sealed, b"ad").unwrap().as_slice(), b"content key");
    }

    #[test]
    fn sealing_detects_tamper() {
        let key = KeyPair::generate().derive_key(b"test");
        let mut sealed = key.seal_random(b"content key", b"ad");
        assert_eq!(key.open_random(&sealed, b"ad").unwrap().as_slice(), b"content key");
        sealed[14] ^= 1;
        assert!(key.open_random(&sealed, b"ad").is_none());
    }
}
