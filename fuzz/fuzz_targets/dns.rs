//! The agent's DNS answer parser on arbitrary datagrams (what any host on
//! the LAN can send to the agent's resolver port). The query id is taken
//! from the input so most inputs get past the id check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if let Some(addrs) = lazare_agent::net::dns::parse_answer(data, id) {
        // Every address comes from a 4-byte record of the message.
        assert!(addrs.len() * 4 <= data.len());
    }
});
