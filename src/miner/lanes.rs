//! The miner's fast path: the double SHA-256 of one header for several nonces
//! at once ("lanes"), with the x86-64 SHA extensions (SHA-NI) when the CPU has
//! them and the sha2 crate's compression ([`HeaderHasher`]) when it does not.
//!
//! Why lanes: one SHA-NI compression is a chain of 32 `sha256rnds2`
//! instructions, each waiting for the previous one's result, so a single hash
//! leaves the unit idle between them. The lanes' chains are independent, and
//! issuing them step by step side by side lets their latencies overlap.
//!
//! Why shortcuts: the header layout fixes most of what is hashed per nonce.
//! The nonce is words 6 and 7 of the header's second 64-byte block; the rest
//! of that block (header bytes 64..88 and the padding) is the same for every
//! nonce, and so is the padding of the outer hash's 32-byte message. Computed
//! once per header rather than once per nonce:
//! - rounds 0 to 5 of the second block, which read only its words 0 to 5;
//! - W+K of rounds 8 to 19 of the second block (its W16 to W19 are drawn from
//!   fixed words only) and of rounds 8 to 15 of the outer hash;
//! - the fixed terms of the message schedule that later words draw on.
//!
//! That leaves 61 `sha256rnds2` per nonce instead of 64.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{HeaderHasher, MineOutcome, CANCEL_CHECK_INTERVAL};
use crate::crypto::Target;
use crate::types::{BlockHash, BlockHeader, Hash256, HEADER_BYTES, HEADER_NONCE_OFFSET};

/// Nonces hashed side by side. Measured on a Xeon with SHA-NI, 3 to 6 lanes
/// run alike, one lane about 15 % slower and 8 lanes 5 to 10 % slower (they
/// spill out of the 16 XMM registers); 4 also divides the cancel interval.
pub const LANES: usize = 4;

// The shortcuts read words 6 and 7 of the second block as the nonce and every
// other word of the two padded blocks as fixed.
const _: () = assert!(HEADER_BYTES == 96 && HEADER_NONCE_OFFSET == 88);
// The loop looks at the cancel flag at the start of a batch.
const _: () = assert!(CANCEL_CHECK_INTERVAL % LANES as u64 == 0);

/// Hashes one header for batches of [`LANES`] nonces, with SHA-NI where the
/// CPU has it (chosen at run time) and sha2 elsewhere.
#[derive(Clone)]
pub struct LaneHasher {
    header: BlockHeader,
    /// The sha2 path: the fallback, and the check of every hash the fast path
    /// reports as meeting the target before a block is handed out.
    reference: HeaderHasher,
    sha_ni: Option<sha_ni::ShaNiHasher>,
}

impl LaneHasher {
    /// The fastest hasher this CPU supports for `header` (its nonce is ignored).
    pub fn new(header: &BlockHeader) -> LaneHasher {
        let reference = HeaderHasher::new(header);
        let sha_ni = sha_ni::ShaNiHasher::new(&reference.midstate, &reference.tail);
        LaneHasher { header: *header, reference, sha_ni }
    }

    /// The sha2 path whatever the CPU: the fallback, for comparison and tests.
    pub fn portable(header: &BlockHeader) -> LaneHasher {
        LaneHasher { header: *header, reference: HeaderHasher::new(header), sha_ni: None }
    }

    /// Whether the hashing runs on the SHA-NI lanes.
    pub fn uses_sha_ni(&self) -> bool {
        self.sha_ni.is_some()
    }

    /// The block hashes of the header with each of `nonces`, in order.
    pub fn hash_lanes(&self, nonces: &[u64; LANES]) -> [BlockHash; LANES] {
        let mut out = [BlockHash::default(); LANES];
        match &self.sha_ni {
            Some(fast) => {
                for (hash, words) in out.iter_mut().zip(fast.digests(nonces)) {
                    for (chunk, word) in hash.0 .0.chunks_exact_mut(4).zip(words) {
                        chunk.copy_from_slice(&word.to_be_bytes());
                    }
                }
            }
            None => {
                for (hash, &nonce) in out.iter_mut().zip(nonces) {
                    *hash = BlockHash(Hash256(self.reference.hash(nonce)));
                }
            }
        }
        out
    }

    /// The first four bytes of each nonce's block hash, as a big-endian word:
    /// all the loop needs to rule a nonce out.
    fn leading_words(&self, nonces: &[u64; LANES]) -> [u32; LANES] {
        match &self.sha_ni {
            Some(fast) => fast.leading_words(nonces),
            None => {
                let mut out = [0; LANES];
                for (word, &nonce) in out.iter_mut().zip(nonces) {
                    let [b0, b1, b2, b3, ..] = self.reference.hash(nonce);
                    *word = u32::from_be_bytes([b0, b1, b2, b3]);
                }
                out
            }
        }
    }

    /// Tries nonces `start, start + stride, …` (`count` of them, wrapping
    /// around `u64`; a `stride` of 0 counts as 1) until the header's hash
    /// meets its target, and reports the first such nonce in that order.
    /// Looks at `cancel` every [`CANCEL_CHECK_INTERVAL`] nonces. Blocking.
    pub fn mine(&self, start: u64, stride: u64, count: u64, cancel: &AtomicBool) -> MineOutcome {
        let Ok(target) = Target::from_compact(self.header.target) else { return MineOutcome::Exhausted };
        let [t0, t1, t2, t3, ..] = target.to_be_bytes();
        let target_word = u32::from_be_bytes([t0, t1, t2, t3]);
        let stride = stride.max(1);
        let mut next = start;
        let mut tried = 0u64;
        while tried < count {
            if tried % CANCEL_CHECK_INTERVAL == 0 && cancel.load(Ordering::Relaxed) {
                return MineOutcome::Cancelled;
            }
            let mut nonces = [0u64; LANES];
            for nonce in &mut nonces {
                *nonce = next;
                next = next.wrapping_add(stride);
            }
            // The last batch may reach past `count`: its extra lanes are not looked at.
            let live = (count - tried).min(LANES as u64);
            let words = self.leading_words(&nonces);
            for (&nonce, &word) in nonces.iter().zip(&words).take(live as usize) {
                // A hash whose first word exceeds the target's cannot meet it;
                // any other is settled by the whole hash, computed with sha2.
                if word <= target_word && target.is_met_by(&BlockHash(Hash256(self.reference.hash(nonce)))) {
                    let mut found = self.header;
                    found.nonce = nonce;
                    return MineOutcome::Found(found);
                }
            }
            tried += live;
        }
        MineOutcome::Exhausted
    }
}

#[cfg(target_arch = "x86_64")]
mod sha_ni {
    //! The SHA-NI lanes. SHA-NI keeps the eight state words in two registers,
    //! (A, B, E, F) and (C, D, G, H) from the highest lane down, and takes the
    //! message four words (a "quad") at a time, word t in the lowest lane.
    //!
    //! The intrinsics live in `unsafe fn`s with `#[target_feature]` (required
    //! before Rust 1.86, the crate's floor is 1.85). Their bodies touch no
    //! pointers: the only thing that makes them unsafe is running them on a
    //! CPU without the features, which [`ShaNiHasher`] rules out.

    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_cvtsi64_si128, _mm_extract_epi32, _mm_set_epi32,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
        _mm_unpackhi_epi64, _mm_unpacklo_epi64,
    };

    use super::super::SHA256_IV;

    /// SHA-256's round constants, by quad.
    const K: [[u32; 4]; 16] = [
        [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5],
        [0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5],
        [0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3],
        [0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174],
        [0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc],
        [0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da],
        [0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7],
        [0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967],
        [0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13],
        [0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85],
        [0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3],
        [0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070],
        [0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5],
        [0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3],
        [0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208],
        [0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2],
    ];

    /// Whether this CPU runs every instruction the lanes use.
    fn cpu_has_sha_ni() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    }

    /// The per-header values, on a CPU that has SHA-NI: holding one is the
    /// proof that the feature check passed, since [`ShaNiHasher::new`] is
    /// the only way to build one.
    #[derive(Clone, Debug)]
    pub(super) struct ShaNiHasher(Prepared);

    impl ShaNiHasher {
        /// `None` if the CPU lacks SHA-NI. `tail` is the padded second block;
        /// its nonce words are ignored.
        pub(super) fn new(midstate: &[u32; 8], tail: &[u8; 64]) -> Option<ShaNiHasher> {
            if !cpu_has_sha_ni() {
                return None;
            }
            let mut words = [0u32; 16];
            for (word, bytes) in words.iter_mut().zip(tail.chunks_exact(4)) {
                let mut be = [0u8; 4];
                be.copy_from_slice(bytes);
                *word = u32::from_be_bytes(be);
            }
            // SAFETY: `cpu_has_sha_ni()` just found sha, sse2, ssse3 and sse4.1.
            Some(ShaNiHasher(unsafe { prepare(midstate, &words) }))
        }

        pub(super) fn leading_words<const N: usize>(&self, nonces: &[u64; N]) -> [u32; N] {
            // SAFETY: a ShaNiHasher exists only once `new` has found sha,
            // sse2, ssse3 and sse4.1 on this CPU.
            unsafe { leading_words(&self.0, nonces) }
        }

        pub(super) fn digests<const N: usize>(&self, nonces: &[u64; N]) -> [[u32; 8]; N] {
            // SAFETY: a ShaNiHasher exists only once `new` has found sha,
            // sse2, ssse3 and sse4.1 on this CPU.
            unsafe { digests(&self.0, nonces) }
        }
    }

    /// A SHA-256 state in SHA-NI's two registers.
    #[derive(Clone, Copy, Debug)]
    struct State {
        abef: __m128i,
        cdgh: __m128i,
    }

    /// W+K of a quad whose words are the same in every lane, split for the two
    /// `sha256rnds2` of the quad (each reads the low two lanes).
    type SharedWk = [__m128i; 2];

    #[derive(Clone, Debug)]
    struct Prepared {
        k: [__m128i; 16],
        /// The state after the header's first block, added back at the end
        /// of the second one.
        midstate: State,
        /// After rounds 0..6 of the second block. An odd number of round
        /// pairs leaves the registers swapped: `abef` holds (C, D, G, H) and
        /// `cdgh` holds (A, B, E, F), as the second `sha256rnds2` of quad 1 wants.
        after_six_rounds: State,
        /// Quad 1 of the second block with its nonce words (6, 7) zero.
        inner_w4_w5: __m128i,
        /// K6 and K7 in the low lanes.
        k6_k7: __m128i,
        /// Quads 2, 3 and 4 of the second block, all fixed.
        inner_m2: __m128i,
        inner_m3: __m128i,
        inner_m4: __m128i,
        inner_wk: [SharedWk; 3],
        /// `sha256msg1` of quads (2, 3) and (3, 4): the σ0 parts of quads 6 and 7.
        inner_s6: __m128i,
        inner_s7: __m128i,
        /// The outer hash: its initial state, its padding quads 2 and 3, their
        /// W+K and the σ0 part of quad 6.
        iv: State,
        outer_m2: __m128i,
        outer_m3: __m128i,
        outer_wk: [SharedWk; 2],
        outer_s6: __m128i,
    }

    /// Four words, the first in the lowest lane.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn quad(w: [u32; 4]) -> __m128i {
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn state_of(h: &[u32; 8]) -> State {
        State {
            abef: _mm_set_epi32(h[0] as i32, h[1] as i32, h[4] as i32, h[5] as i32),
            cdgh: _mm_set_epi32(h[2] as i32, h[3] as i32, h[6] as i32, h[7] as i32),
        }
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn words_of(s: State) -> [u32; 8] {
        [
            _mm_extract_epi32::<3>(s.abef) as u32,
            _mm_extract_epi32::<2>(s.abef) as u32,
            _mm_extract_epi32::<3>(s.cdgh) as u32,
            _mm_extract_epi32::<2>(s.cdgh) as u32,
            _mm_extract_epi32::<1>(s.abef) as u32,
            _mm_extract_epi32::<0>(s.abef) as u32,
            _mm_extract_epi32::<1>(s.cdgh) as u32,
            _mm_extract_epi32::<0>(s.cdgh) as u32,
        ]
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn shared_wk(w: __m128i, k: __m128i) -> SharedWk {
        let wk = _mm_add_epi32(w, k);
        [wk, _mm_shuffle_epi32::<0x0E>(wk)]
    }

    /// The message schedule's next quad from the quad four back (`oldest`),
    /// three back (`older`), two back (`old`) and one back (`last`).
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn next_quad(oldest: __m128i, older: __m128i, old: __m128i, last: __m128i) -> __m128i {
        extend_quad(_mm_sha256msg1_epu32(oldest, older), old, last)
    }

    /// [`next_quad`] from the `sha256msg1` of the two oldest quads, `s`.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn extend_quad(s: __m128i, old: __m128i, last: __m128i) -> __m128i {
        _mm_sha256msg2_epu32(_mm_add_epi32(s, _mm_alignr_epi8::<4>(last, old)), last)
    }

    /// The per-header values; `w` is the second block, its words 6 and 7 unread.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn prepare(midstate: &[u32; 8], w: &[u32; 16]) -> Prepared {
        let mut k = [_mm_setzero_si128(); 16];
        for (v, words) in k.iter_mut().zip(K) {
            *v = quad(words);
        }
        let m0 = quad([w[0], w[1], w[2], w[3]]);
        let m1 = quad([w[4], w[5], 0, 0]);
        let m2 = quad([w[8], w[9], w[10], w[11]]);
        let m3 = quad([w[12], w[13], w[14], w[15]]);
        // W16 to W19 read words 0 to 4, 9 to 12, 14 and 15: none of the nonce's.
        let m4 = next_quad(m0, m1, m2, m3);

        let mid = state_of(midstate);
        let wk0 = _mm_add_epi32(m0, k[0]);
        let cdgh = _mm_sha256rnds2_epu32(mid.cdgh, mid.abef, wk0);
        let abef = _mm_sha256rnds2_epu32(mid.abef, cdgh, _mm_shuffle_epi32::<0x0E>(wk0));
        let cdgh = _mm_sha256rnds2_epu32(cdgh, abef, _mm_add_epi32(m1, k[1]));

        let outer_m2 = quad([0x8000_0000, 0, 0, 0]);
        let outer_m3 = quad([0, 0, 0, 256]);
        Prepared {
            k,
            midstate: mid,
            after_six_rounds: State { abef, cdgh },
            inner_w4_w5: m1,
            k6_k7: _mm_shuffle_epi32::<0x0E>(k[1]),
            inner_m2: m2,
            inner_m3: m3,
            inner_m4: m4,
            inner_wk: [shared_wk(m2, k[2]), shared_wk(m3, k[3]), shared_wk(m4, k[4])],
            inner_s6: _mm_sha256msg1_epu32(m2, m3),
            inner_s7: _mm_sha256msg1_epu32(m3, m4),
            iv: state_of(&SHA256_IV),
            outer_m2,
            outer_m3,
            outer_wk: [shared_wk(outer_m2, k[2]), shared_wk(outer_m3, k[3])],
            outer_s6: _mm_sha256msg1_epu32(outer_m2, outer_m3),
        }
    }

    // The lane steps: each does one thing to every lane before the next step,
    // so the lanes' dependency chains run side by side.

    /// Four rounds on every lane with its own message quad `w`.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn rounds<const N: usize>(s: &mut [State; N], w: &[__m128i; N], k: __m128i) {
        let mut wk = *w;
        for wk in &mut wk {
            *wk = _mm_add_epi32(*wk, k);
        }
        for (s, wk) in s.iter_mut().zip(&wk) {
            s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, *wk);
        }
        for (s, wk) in s.iter_mut().zip(&wk) {
            s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32::<0x0E>(*wk));
        }
    }

    /// Four rounds on every lane with a quad that all lanes share.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn shared_rounds<const N: usize>(s: &mut [State; N], wk: &SharedWk) {
        for s in s.iter_mut() {
            s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, wk[0]);
        }
        for s in s.iter_mut() {
            s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, wk[1]);
        }
    }

    /// [`next_quad`] on every lane.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn next_quads<const N: usize>(
        oldest: &[__m128i; N],
        older: &[__m128i; N],
        old: &[__m128i; N],
        last: &[__m128i; N],
    ) -> [__m128i; N] {
        let mut s = *oldest;
        for (s, older) in s.iter_mut().zip(older) {
            *s = _mm_sha256msg1_epu32(*s, *older);
        }
        extend_quads(&s, old, last)
    }

    /// [`extend_quad`] on every lane.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn extend_quads<const N: usize>(s: &[__m128i; N], old: &[__m128i; N], last: &[__m128i; N]) -> [__m128i; N] {
        let mut out = *s;
        for ((out, old), last) in out.iter_mut().zip(old).zip(last) {
            *out = extend_quad(*out, *old, *last);
        }
        out
    }

    /// `a += b` on every lane's state.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn add_states<const N: usize>(s: &mut [State; N], b: State) {
        for s in s.iter_mut() {
            s.abef = _mm_add_epi32(s.abef, b.abef);
            s.cdgh = _mm_add_epi32(s.cdgh, b.cdgh);
        }
    }

    /// The final states of the double SHA-256 of the header with each nonce.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn double_sha256<const N: usize>(p: &Prepared, nonces: &[u64; N]) -> [State; N] {
        let zero = _mm_setzero_si128();

        // The header's second block. Rounds 6 and 7 read the nonce: its
        // little-endian bytes, read as big-endian words 6 and 7.
        let mut s = [p.after_six_rounds; N];
        let mut w1 = [zero; N];
        for ((s, w1), nonce) in s.iter_mut().zip(&mut w1).zip(nonces) {
            let w6_w7 = _mm_cvtsi64_si128(nonce.swap_bytes().rotate_left(32) as i64);
            *w1 = _mm_unpacklo_epi64(p.inner_w4_w5, w6_w7);
            s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_add_epi32(w6_w7, p.k6_k7));
        }
        shared_rounds(&mut s, &p.inner_wk[0]);
        shared_rounds(&mut s, &p.inner_wk[1]);
        shared_rounds(&mut s, &p.inner_wk[2]);
        let (m2, m3, m4) = ([p.inner_m2; N], [p.inner_m3; N], [p.inner_m4; N]);
        let w5 = next_quads(&w1, &m2, &m3, &m4);
        rounds(&mut s, &w5, p.k[5]);
        let w6 = extend_quads(&[p.inner_s6; N], &m4, &w5);
        rounds(&mut s, &w6, p.k[6]);
        let w7 = extend_quads(&[p.inner_s7; N], &w5, &w6);
        rounds(&mut s, &w7, p.k[7]);
        let w8 = next_quads(&m4, &w5, &w6, &w7);
        rounds(&mut s, &w8, p.k[8]);
        let w9 = next_quads(&w5, &w6, &w7, &w8);
        rounds(&mut s, &w9, p.k[9]);
        let w10 = next_quads(&w6, &w7, &w8, &w9);
        rounds(&mut s, &w10, p.k[10]);
        let w11 = next_quads(&w7, &w8, &w9, &w10);
        rounds(&mut s, &w11, p.k[11]);
        let w12 = next_quads(&w8, &w9, &w10, &w11);
        rounds(&mut s, &w12, p.k[12]);
        let w13 = next_quads(&w9, &w10, &w11, &w12);
        rounds(&mut s, &w13, p.k[13]);
        let w14 = next_quads(&w10, &w11, &w12, &w13);
        rounds(&mut s, &w14, p.k[14]);
        let w15 = next_quads(&w11, &w12, &w13, &w14);
        rounds(&mut s, &w15, p.k[15]);
        add_states(&mut s, p.midstate);

        // The outer hash: the inner digest is its words 0..8, the rest padding.
        let mut w0 = [zero; N];
        let mut w1 = [zero; N];
        for ((s, w0), w1) in s.iter().zip(&mut w0).zip(&mut w1) {
            // (B, A, D, C) and (F, E, H, G) from the low lane up, then pairs swapped.
            *w0 = _mm_shuffle_epi32::<0xB1>(_mm_unpackhi_epi64(s.abef, s.cdgh));
            *w1 = _mm_shuffle_epi32::<0xB1>(_mm_unpacklo_epi64(s.abef, s.cdgh));
        }
        let mut s = [p.iv; N];
        rounds(&mut s, &w0, p.k[0]);
        rounds(&mut s, &w1, p.k[1]);
        shared_rounds(&mut s, &p.outer_wk[0]);
        shared_rounds(&mut s, &p.outer_wk[1]);
        let (m2, m3) = ([p.outer_m2; N], [p.outer_m3; N]);
        let w4 = next_quads(&w0, &w1, &m2, &m3);
        rounds(&mut s, &w4, p.k[4]);
        let w5 = next_quads(&w1, &m2, &m3, &w4);
        rounds(&mut s, &w5, p.k[5]);
        let w6 = extend_quads(&[p.outer_s6; N], &w4, &w5);
        rounds(&mut s, &w6, p.k[6]);
        let w7 = next_quads(&m3, &w4, &w5, &w6);
        rounds(&mut s, &w7, p.k[7]);
        let w8 = next_quads(&w4, &w5, &w6, &w7);
        rounds(&mut s, &w8, p.k[8]);
        let w9 = next_quads(&w5, &w6, &w7, &w8);
        rounds(&mut s, &w9, p.k[9]);
        let w10 = next_quads(&w6, &w7, &w8, &w9);
        rounds(&mut s, &w10, p.k[10]);
        let w11 = next_quads(&w7, &w8, &w9, &w10);
        rounds(&mut s, &w11, p.k[11]);
        let w12 = next_quads(&w8, &w9, &w10, &w11);
        rounds(&mut s, &w12, p.k[12]);
        let w13 = next_quads(&w9, &w10, &w11, &w12);
        rounds(&mut s, &w13, p.k[13]);
        let w14 = next_quads(&w10, &w11, &w12, &w13);
        rounds(&mut s, &w14, p.k[14]);
        let w15 = next_quads(&w11, &w12, &w13, &w14);
        rounds(&mut s, &w15, p.k[15]);
        add_states(&mut s, p.iv);
        s
    }

    /// The first word (A) of each nonce's hash.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn leading_words<const N: usize>(p: &Prepared, nonces: &[u64; N]) -> [u32; N] {
        let mut out = [0; N];
        for (word, s) in out.iter_mut().zip(double_sha256(p, nonces)) {
            *word = _mm_extract_epi32::<3>(s.abef) as u32;
        }
        out
    }

    /// Each nonce's hash as eight words.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn digests<const N: usize>(p: &Prepared, nonces: &[u64; N]) -> [[u32; 8]; N] {
        let mut out = [[0; 8]; N];
        for (words, s) in out.iter_mut().zip(double_sha256(p, nonces)) {
            *words = words_of(s);
        }
        out
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod sha_ni {
    //! No SHA-NI off x86-64: the sha2 path runs everywhere.

    /// Never built.
    #[derive(Clone, Debug)]
    pub(super) enum ShaNiHasher {}

    impl ShaNiHasher {
        pub(super) fn new(_midstate: &[u32; 8], _tail: &[u8; 64]) -> Option<ShaNiHasher> {
            None
        }

        pub(super) fn leading_words<const N: usize>(&self, _nonces: &[u64; N]) -> [u32; N] {
            match *self {}
        }

        pub(super) fn digests<const N: usize>(&self, _nonces: &[u64; N]) -> [[u32; 8]; N] {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CompactTarget;
    use proptest::prelude::*;

    fn any_header() -> impl Strategy<Value = BlockHeader> {
        (any::<(u32, [u8; 32], u64, [u8; 32], u64, u32, u64)>()).prop_map(
            |(version, prev, height, commitment, time, target, nonce)| BlockHeader {
                version,
                prev: BlockHash(Hash256(prev)),
                height,
                body_commitment: Hash256(commitment),
                time,
                target: CompactTarget(target),
                nonce,
            },
        )
    }

    /// `BlockHeader::hash` (sha2's `Digest`, no midstate) with `nonce`.
    fn sha2_hash(header: &BlockHeader, nonce: u64) -> BlockHash {
        let mut header = *header;
        header.nonce = nonce;
        header.hash()
    }

    fn cpu_has_sha_ni() -> bool {
        #[cfg(target_arch = "x86_64")]
        return is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }

    fn assert_lanes_equal_sha2(hasher: &LaneHasher, header: &BlockHeader, nonces: &[u64; LANES]) {
        for (lane, (hash, &nonce)) in hasher.hash_lanes(nonces).iter().zip(nonces).enumerate() {
            assert_eq!(*hash, sha2_hash(header, nonce), "lane {lane}, nonce {nonce:#018x}");
        }
        let mut leading = [0u32; LANES];
        for (word, &nonce) in leading.iter_mut().zip(nonces) {
            let [b0, b1, b2, b3, ..] = sha2_hash(header, nonce).0 .0;
            *word = u32::from_be_bytes([b0, b1, b2, b3]);
        }
        assert_eq!(hasher.leading_words(nonces), leading);
    }

    /// Nonces that differ across lanes in every byte.
    fn distinct_in_every_byte(base: u64) -> [u64; LANES] {
        let mut nonces = [0; LANES];
        for (lane, nonce) in (1..).zip(&mut nonces) {
            *nonce = base ^ (0x0101_0101_0101_0101 * lane);
        }
        nonces
    }

    #[test]
    fn the_lanes_run_on_sha_ni_where_the_cpu_has_it() {
        let header = BlockHeader {
            version: 1,
            prev: BlockHash::default(),
            height: 1,
            body_commitment: Hash256([1; 32]),
            time: 1,
            target: CompactTarget(0x1f00ffff),
            nonce: 0,
        };
        assert_eq!(LaneHasher::new(&header).uses_sha_ni(), cpu_has_sha_ni());
        assert!(!LaneHasher::portable(&header).uses_sha_ni());
    }

    proptest! {
        #[test]
        fn each_lane_equals_sha2(header in any_header(), nonces in any::<[u64; LANES]>()) {
            assert_lanes_equal_sha2(&LaneHasher::new(&header), &header, &nonces);
        }

        #[test]
        fn each_lane_equals_sha2_when_the_nonces_differ_in_every_byte(header in any_header(), base in any::<u64>()) {
            assert_lanes_equal_sha2(&LaneHasher::new(&header), &header, &distinct_in_every_byte(base));
        }

        #[test]
        fn the_fallback_equals_sha2(header in any_header(), nonces in any::<[u64; LANES]>(), base in any::<u64>()) {
            let hasher = LaneHasher::portable(&header);
            assert_lanes_equal_sha2(&hasher, &header, &nonces);
            assert_lanes_equal_sha2(&hasher, &header, &distinct_in_every_byte(base));
        }

        /// About one hash in 16 meets the target, so a run of up to 100 nonces
        /// often holds none, one or several, and the last batch is often partial.
        #[test]
        fn mine_reports_the_first_nonce_in_order_that_meets_the_target(
            header in any_header(),
            start in any::<u64>(),
            stride in prop_oneof![0..4u64, any::<u64>()],
            count in 0..100u64,
            portable in any::<bool>(),
        ) {
            let mut header = header;
            header.target = CompactTarget(0x200f_ffff);
            let target = Target::from_compact(header.target).unwrap();
            let expected = (0..count)
                .map(|i| start.wrapping_add(i.wrapping_mul(stride.max(1))))
                .find(|&nonce| target.is_met_by(&sha2_hash(&header, nonce)))
                .map_or(MineOutcome::Exhausted, |nonce| MineOutcome::Found(BlockHeader { nonce, ..header }));
            let hasher = if portable { LaneHasher::portable(&header) } else { LaneHasher::new(&header) };
            prop_assert_eq!(hasher.mine(start, stride, count, &AtomicBool::new(false)), expected);
        }
    }

    #[test]
    fn mine_stops_when_cancelled_from_another_thread() {
        let header = BlockHeader {
            version: 1,
            prev: BlockHash::default(),
            height: 1,
            body_commitment: Hash256([1; 32]),
            time: 1,
            target: CompactTarget(0x03000001), // nothing meets it
            nonce: 0,
        };
        let cancel = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            let miner = scope.spawn(|| LaneHasher::new(&header).mine(0, 1, u64::MAX, &cancel));
            cancel.store(true, Ordering::Relaxed);
            miner.join().unwrap()
        });
        assert_eq!(outcome, MineOutcome::Cancelled);
        for hasher in [LaneHasher::new(&header), LaneHasher::portable(&header)] {
            assert_eq!(hasher.mine(0, 1, 0, &cancel), MineOutcome::Exhausted);
            assert_eq!(hasher.mine(0, 1, 1, &cancel), MineOutcome::Cancelled);
            assert_eq!(hasher.mine(0, 1, 10_000, &AtomicBool::new(false)), MineOutcome::Exhausted);
        }
    }
}
