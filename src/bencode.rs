//! Bencoding (BitTorrent's encoding, BEP 3), writing only: the `.torrent`
//! files `lazare image add` makes and the tracker's answers. Nothing here
//! parses bencode: the engine (`lazare-share`) reads the torrents, and the
//! tracker's requests are URL query strings.

use std::collections::BTreeMap;

/// One bencoded value. Dictionary keys are byte strings, written in sorted
/// order as BEP 3 requires (a `BTreeMap` keeps them so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(pairs.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
    }

    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => write_bytes(out, b),
            Value::List(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.write(out));
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    write_bytes(out, k);
                    v.write(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("{}:", b.len()).as_bytes());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_bep3_says() {
        // BEP 3's own examples.
        assert_eq!(Value::bytes("spam").encode(), b"4:spam");
        assert_eq!(Value::Int(3).encode(), b"i3e");
        assert_eq!(Value::Int(-3).encode(), b"i-3e");
        assert_eq!(
            Value::List(vec![Value::bytes("spam"), Value::bytes("eggs")]).encode(),
            b"l4:spam4:eggse"
        );
        // Keys come out sorted whatever order they were given in.
        let d = Value::dict([("spam", Value::bytes("eggs")), ("cow", Value::bytes("moo"))]);
        assert_eq!(d.encode(), b"d3:cow3:moo4:spam4:eggse");
        assert_eq!(Value::bytes(Vec::new()).encode(), b"0:");
    }
}
