//! A bounds-checked cursor over snapshot bytes (client tables, checkpoints, positions): every read
//! returns what it asked for or "truncated", whatever the bytes hold.

/// See the module docs.
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// The bytes ended before what was read.
pub const TRUNCATED: &str = "truncated";

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader { bytes, at: 0 }
    }

    /// Bytes read so far.
    pub fn consumed(&self) -> usize {
        self.at
    }

    pub fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or(TRUNCATED)?;
        let s = self.bytes.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A length (u64) and that many bytes.
    pub fn bytes_with_len(&mut self) -> Result<&'a [u8], &'static str> {
        let n = usize::try_from(self.u64()?).map_err(|_| TRUNCATED)?;
        self.take(n)
    }
}

/// Appends `bytes` after their length (u64): what [`ByteReader::bytes_with_len`] reads.
pub fn put_with_len(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_and_refuses_past_the_end() {
        let mut out = vec![7];
        out.extend_from_slice(&9u32.to_le_bytes());
        put_with_len(&mut out, b"abc");
        let mut r = ByteReader::new(&out);
        assert_eq!((r.u8(), r.u32(), r.bytes_with_len()), (Ok(7), Ok(9), Ok(&b"abc"[..])));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(TRUNCATED));
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.push(1);
        assert_eq!(ByteReader::new(&huge).bytes_with_len(), Err(TRUNCATED));
    }
}
