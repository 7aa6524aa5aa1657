//! The checkpoint checksum, and the tools that edit a file and sign it again (for the
//! loaders' fuzz tests, which need files that pass the checksum but hold impossible contents).

use super::format::{Raw, RawFile};
use super::CheckpointError;
use safetensors::Dtype;
use std::collections::HashMap;

/// A 64-bit digest: each 8-byte word is xored in, multiplied by an odd constant and
/// xor-shifted. Every step is a bijection of the state, so changing any single word always
/// changes the result; several changes collide with probability about 2⁻⁶⁴. Corruption
/// detection, not security.
struct Digest(u64);

impl Digest {
    fn word(&mut self, w: u64) {
        let h = (self.0 ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
        self.0 = h ^ (h >> 29);
    }

    /// Length-prefixed bytes, so concatenations cannot collide by shifting boundaries.
    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut last = [0u8; 8];
            last[..rem.len()].copy_from_slice(rem);
            self.word(u64::from_le_bytes(last));
        }
    }

    /// splitmix64's finaliser.
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A tensor as the digest sees it: name, dtype, shape, bytes.
pub(crate) type TensorView<'a> = (&'a str, Dtype, &'a [usize], &'a [u8]);

/// Digest of metadata (sorted by key) and tensors (sorted by name), as 16 hex digits.
pub(crate) fn digest(meta: &HashMap<String, String>, tensors: &[TensorView<'_>]) -> String {
    let mut d = Digest(0x6562_6d2d_636b_7074); // "ebm-ckpt"
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    d.word(keys.len() as u64);
    for k in keys {
        d.bytes(k.as_bytes());
        d.bytes(meta[k].as_bytes());
    }
    let mut ts: Vec<&TensorView<'_>> = tensors.iter().collect();
    ts.sort_by(|a, b| a.0.cmp(b.0));
    d.word(ts.len() as u64);
    for (name, dtype, shape, data) in ts {
        d.bytes(name.as_bytes());
        d.bytes(format!("{dtype:?}").as_bytes());
        d.word(shape.len() as u64);
        for &s in shape.iter() {
            d.word(s as u64);
        }
        d.bytes(data);
    }
    format!("{:016x}", d.finish())
}

/// Recomputes the checksum of checkpoint bytes whose metadata or tensors were edited by hand
/// (or by the loader's fuzz tests, which build files that pass the checksum but hold
/// impossible contents); the file must still be structurally valid safetensors. Nothing
/// else is checked: [`super::Checkpoint::from_bytes`] still validates every value.
pub fn resign(bytes: &[u8]) -> Result<Vec<u8>, CheckpointError> {
    let file = RawFile::parse(bytes)?;
    let mut meta = file.metadata.metadata().clone().unwrap_or_default();
    meta.remove("checksum");
    meta.insert("checksum".into(), file.digest(&meta));
    let tensors: Vec<(String, Raw)> = file
        .infos()
        .iter()
        .map(|(n, i)| {
            let raw = Raw {
                dtype: i.dtype,
                shape: i.shape.clone(),
                data: file.data(i).to_vec(),
            };
            (n.clone(), raw)
        })
        .collect();
    safetensors::serialize(tensors, Some(meta)).map_err(|e| CheckpointError::Serialize {
        detail: e.to_string(),
    })
}

/// Safetensors bytes with their JSON header edited by `edit` (the header re-padded, the
/// data section untouched, the checksum not updated: pass the result to [`resign`] for a
/// file that passes it). None when the bytes have no readable header.
pub fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Option<Vec<u8>> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let end = 8usize.checked_add(n)?;
    let mut header: serde_json::Value = serde_json::from_slice(bytes.get(8..end)?).ok()?;
    edit(&mut header);
    let mut h = header.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h.as_bytes());
    out.extend(&bytes[end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_sees_every_single_word_change() {
        let meta: HashMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let data = vec![7u8; 40];
        let base = digest(&meta, &[("t", Dtype::F32, &[10], &data)]);
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut d2 = data.clone();
                d2[i] ^= 1 << bit;
                assert_ne!(digest(&meta, &[("t", Dtype::F32, &[10], &d2)]), base);
            }
        }
        assert_ne!(digest(&meta, &[("t", Dtype::F32, &[5, 2], &data)]), base);
        assert_ne!(digest(&meta, &[("u", Dtype::F32, &[10], &data)]), base);
    }
}
