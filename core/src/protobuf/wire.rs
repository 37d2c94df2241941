//! Protobuf wire-format reader (varints, fixed32/64, length-delimited
//! fields), bounds-checked like gogo-protobuf's generated `Unmarshal`.

use super::ProtobufError;

/// Wire type 0: varint.
pub const VARINT: u8 = 0;
/// Wire type 1: 64-bit little endian.
pub const FIXED64: u8 = 1;
/// Wire type 2: length-delimited.
pub const LEN: u8 = 2;
/// Wire type 5: 32-bit little endian.
pub const FIXED32: u8 = 5;

/// A cursor over one message's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A base-128 varint of at most 10 bytes; `proto: integer overflow`
    /// past 64 bits, `unexpected EOF` when cut short.
    pub fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(ProtobufError::UnexpectedEof)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ProtobufError::IntegerOverflow);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProtobufError::IntegerOverflow)
    }

    /// A field key: (field number, wire type). Field 0 and the group wire
    /// types 3/4 (never used by Kubernetes) are errors.
    pub fn key(&mut self) -> Result<(u32, u8), ProtobufError> {
        let k = self.varint()?;
        let wire = (k & 7) as u8;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(ProtobufError::IllegalTag(field));
        }
        if !matches!(wire, VARINT | FIXED64 | LEN | FIXED32) {
            return Err(ProtobufError::IllegalWireType(wire));
        }
        Ok((field as u32, wire))
    }

    /// `n` raw bytes; `unexpected EOF` if fewer remain.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], ProtobufError> {
        let rest = self.buf.len() - self.pos;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= rest)
            .ok_or(ProtobufError::UnexpectedEof)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// A length-delimited payload (varint length, then the bytes).
    pub fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let n = self.varint()?;
        if n > i64::MAX as u64 {
            return Err(ProtobufError::NegativeLength);
        }
        self.take(n)
    }

    /// Skips one value of the given wire type.
    pub fn skip(&mut self, wire: u8) -> Result<(), ProtobufError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            w => Err(ProtobufError::IllegalWireType(w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0]).varint(), Ok(0));
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader::new(&over).varint(),
            Err(ProtobufError::IntegerOverflow)
        );
        let long = [0x80; 11];
        assert_eq!(
            Reader::new(&long).varint(),
            Err(ProtobufError::IntegerOverflow)
        );
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(ProtobufError::UnexpectedEof)
        );
        assert_eq!(Reader::new(&[]).varint(), Err(ProtobufError::UnexpectedEof));
    }

    #[test]
    fn keys_and_skips() {
        // field 1 varint 5, field 2 fixed64, field 3 "ab", field 4 fixed32
        let buf = [
            0x08, 5, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 2, b'a', b'b', 0x25, 1, 2, 3, 4,
        ];
        let mut r = Reader::new(&buf);
        assert_eq!(r.key(), Ok((1, VARINT)));
        r.skip(VARINT).unwrap();
        assert_eq!(r.key(), Ok((2, FIXED64)));
        r.skip(FIXED64).unwrap();
        assert_eq!(r.key(), Ok((3, LEN)));
        assert_eq!(r.bytes(), Ok(&b"ab"[..]));
        assert_eq!(r.key(), Ok((4, FIXED32)));
        r.skip(FIXED32).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn bad_keys_and_lengths() {
        assert_eq!(
            Reader::new(&[0x00]).key(),
            Err(ProtobufError::IllegalTag(0))
        );
        assert_eq!(
            Reader::new(&[0x0b]).key(),
            Err(ProtobufError::IllegalWireType(3))
        );
        assert_eq!(
            Reader::new(&[0x0e]).key(),
            Err(ProtobufError::IllegalWireType(6))
        );
        // length 5 with 2 bytes left
        assert_eq!(
            Reader::new(&[5, 1, 2]).bytes(),
            Err(ProtobufError::UnexpectedEof)
        );
        // a huge length must not allocate or overflow
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            Reader::new(&huge).bytes(),
            Err(ProtobufError::UnexpectedEof)
        );
        let neg = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            Reader::new(&neg).bytes(),
            Err(ProtobufError::NegativeLength)
        );
        assert_eq!(
            Reader::new(&[1, 2, 3]).take(4),
            Err(ProtobufError::UnexpectedEof)
        );
    }
}
