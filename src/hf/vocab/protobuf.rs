//! A minimal protobuf wire-format reader, enough to read a SentencePiece `ModelProto`.

/// A minimal protobuf wire-format reader over a byte slice; every read is bounds-checked.
pub(super) struct PbReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PbReader<'a> {
    /// A reader at the start of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Self {
        PbReader { buf, pos: 0 }
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| format!("truncated varint at byte {}", self.pos))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(format!("varint overflows 64 bits at byte {}", self.pos - 1));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    pub(super) fn key(&mut self) -> std::result::Result<(u64, u8), String> {
        let at = self.pos;
        let k = self.varint()?;
        if k >> 3 == 0 {
            return Err(format!("field number 0 at byte {at}"));
        }
        Ok((k >> 3, (k & 7) as u8))
    }

    pub(super) fn take(&mut self, n: u64) -> std::result::Result<&'a [u8], String> {
        let left = self.buf.len() - self.pos;
        if n > left as u64 {
            return Err(format!(
                "truncated: {n} bytes needed at byte {}, {left} left",
                self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    pub(super) fn bytes(&mut self) -> std::result::Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(n)
    }

    fn skip_value(&mut self, wire: u8) -> std::result::Result<(), String> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            w => Err(format!("invalid wire type {w} at byte {}", self.pos)),
        }
    }

    /// Skips the value of a field just read with [`PbReader::key`], groups included.
    pub(super) fn skip(&mut self, field: u64, wire: u8) -> std::result::Result<(), String> {
        match wire {
            3 => {
                let mut open = vec![field];
                while let Some(&top) = open.last() {
                    let (f, w) = self.key()?;
                    match w {
                        3 if open.len() >= 64 => return Err("groups nested too deeply".into()),
                        3 => open.push(f),
                        4 if f == top => {
                            open.pop();
                        }
                        4 => return Err(format!("end of group {f} inside group {top}")),
                        w => self.skip_value(w)?,
                    }
                }
                Ok(())
            }
            4 => Err(format!(
                "unexpected end of group {field} at byte {}",
                self.pos
            )),
            w => self.skip_value(w),
        }
    }
}
