//! DHCP replies as the agent handles them: decoded with dhcproto, the lease
//! read out of them (`lease_from`, which the agent then applies).
#![no_main]

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(&mut Decoder::new(data)) else { return };
    let _ = lazare_agent::net::dhcp::lease_from("eth0", &m);
    let mut out = Vec::new();
    let _ = m.encode(&mut Encoder::new(&mut out));
});
