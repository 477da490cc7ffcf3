//! Who gives a PC of the room the sharing engine (the tracker's
//! `GET /engine`, see [`lazare_proto::EngineSource`]). The server sends it
//! while no PC of the room has it, to one PC at a time; a PC running it
//! serves it to at most [`PER_PC`] others at once; the rest wait a moment.
//! A PC that got it starts its engine and announces, and from then on it
//! is a source too, so the sources double each round: 40 PCs take it in
//! about six rounds of seconds, and the server's link carries it once
//! instead of 40 times (the engine is a fifth of the `standard` image in a
//! room of 40).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lazare_proto::EngineSource;

/// Uploads of the engine a PC is asked for at once.
pub const PER_PC: usize = 3;
/// The server sends the engine to this many PCs at once while no PC has it.
const SERVER_AT_ONCE: usize = 1;
/// A PC told where to fetch the engine that has not announced within this
/// is taken for failed (it fetched it elsewhere, or gave up): its source
/// is free again.
const LEASE: Duration = Duration::from_secs(20);

struct Handout {
    /// `None`: the server.
    from: Option<SocketAddr>,
    to: IpAddr,
    at: Instant,
}

#[derive(Default)]
pub struct Handouts {
    inflight: Vec<Handout>,
    /// Engines each PC was asked to give, all told: the least asked first.
    given: HashMap<SocketAddr, u32>,
}

impl Handouts {
    /// Where the PC at `to` gets the engine. `sources`: the PCs announcing
    /// now, each as (the address it announced from, where it serves the
    /// engine).
    pub fn answer(
        &mut self,
        to: IpAddr,
        sources: &[(IpAddr, SocketAddr)],
        now: Instant,
    ) -> EngineSource {
        // Done (its receiver announces: it runs the engine), stale, or
        // this PC's own earlier one (it asks again: that one failed).
        self.inflight.retain(|h| {
            h.to != to
                && now.duration_since(h.at) < LEASE
                && !sources.iter().any(|(ip, _)| *ip == h.to)
        });
        let busy =
            |from: Option<SocketAddr>| self.inflight.iter().filter(|h| h.from == from).count();
        let best = sources
            .iter()
            .filter(|(ip, _)| *ip != to)
            .map(|&(_, addr)| (busy(Some(addr)), self.given.get(&addr).copied().unwrap_or(0), addr))
            .filter(|&(n, _, _)| n < PER_PC)
            .min();
        let from = match best {
            Some((_, _, addr)) => {
                *self.given.entry(addr).or_default() += 1;
                Some(addr)
            }
            // Not while a PC has it, even busy: it is free again within
            // seconds, and each copy from the server takes the image's
            // link (in `make bench-room`, scaled down, a copy was a fifth
            // of the image and the server sent two or three).
            None if busy(None) < SERVER_AT_ONCE && !sources.iter().any(|(ip, _)| *ip != to) => None,
            None => return EngineSource::Wait,
        };
        self.inflight.push(Handout { from, to, at: now });
        from.map_or(EngineSource::Server, EngineSource::Peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }
    fn src(n: u8) -> (IpAddr, SocketAddr) {
        (ip(n), SocketAddr::new(ip(n), 6882))
    }

    #[test]
    fn the_server_gives_it_once_then_the_pcs_that_have_it_give_it_on() {
        let mut h = Handouts::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // Nobody has it: the first PC gets it from the server, the next wait.
        assert_eq!(h.answer(ip(1), &[], t0), EngineSource::Server);
        assert_eq!(h.answer(ip(2), &[], t0), EngineSource::Wait);
        // PC 1 runs it: it gives it to three at once; the others wait for
        // it (the server's link is the image's).
        let one = [src(1)];
        for n in 2..=4 {
            assert_eq!(h.answer(ip(n), &one, t0 + s), EngineSource::Peer(src(1).1));
        }
        assert_eq!(h.answer(ip(5), &one, t0 + s), EngineSource::Wait);
        assert_eq!(h.answer(ip(6), &one, t0 + s), EngineSource::Wait);
        // PC 2 announces: its handout is done, and it is the least asked.
        let two = [src(1), src(2)];
        assert_eq!(h.answer(ip(6), &two, t0 + 2 * s), EngineSource::Peer(src(2).1));
        assert_eq!(h.answer(ip(7), &two, t0 + 2 * s), EngineSource::Peer(src(2).1));
        // A PC asking again (its source failed it) is not sent back to itself.
        assert_eq!(h.answer(ip(2), &two, t0 + 2 * s), EngineSource::Peer(src(1).1));
        // Handouts nobody finished free their source after the lease.
        assert_eq!(h.answer(ip(8), &two, t0 + 2 * s + LEASE), EngineSource::Peer(src(2).1));
        assert_eq!(h.answer(ip(9), &[], t0 + 2 * s + LEASE), EngineSource::Server);
    }
}
