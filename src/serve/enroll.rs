//! Enrolled machines: at its first hello a PC gets a secret (stored here
//! only as a hash) and proves every later call with it, so nobody else on
//! the LAN can speak for it. The `enroll` rule of lazare.toml decides
//! whether a new PC is accepted at once or waits for the admin.

use super::store::{HelloRecord, Store, MAX_MACHINES};
use anyhow::{Context, Result};
use lazare_proto::Inventory;
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How new PCs are accepted (`enroll` in lazare.toml).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollRule {
    /// Any PC that says hello.
    Open,
    /// Only while a window opened from the dashboard or the CLI lasts. The
    /// default: the first start opens one for [`FIRST_WINDOW_HOURS`], so the
    /// first day needs no extra step, and a forgotten server does not keep
    /// accepting strangers for ever.
    #[default]
    Window,
    /// Each PC is accepted on the dashboard.
    Approve,
}

/// The window a fresh data directory opens at its first start.
pub const FIRST_WINDOW_HOURS: u32 = 24;
const HOUR_MS: i64 = 3_600_000;

const ENROLL_UNTIL: &str = "enroll_until";

impl EnrollRule {
    fn accepts(self, now: i64, window_until: Option<i64>) -> bool {
        match self {
            EnrollRule::Open => true,
            EnrollRule::Window => window_until.is_some_and(|until| now < until),
            EnrollRule::Approve => false,
        }
    }
}

/// What a hello earned.
#[derive(Debug)]
pub enum HelloOutcome {
    /// Recorded. `new_secret` is set when this hello enrolled the machine
    /// (its first contact, or the first after "let it enrol again").
    In {
        rec: HelloRecord,
        accepted: bool,
        new_secret: Option<String>,
    },
    Refused(Refusal),
}

/// Why a machine call was refused; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The machine is unknown (only for calls after the hello).
    Unknown,
    /// The machine is enrolled and the call carries no proof.
    NoProof,
    /// The proof is not this machine's secret.
    WrongProof,
    /// The machine was told to enrol again: it must say hello first.
    NotEnrolled,
    /// [`MAX_MACHINES`] reached.
    Full,
}

/// 32 random bytes in hex: the machine's secret, shown once.
fn new_secret() -> Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("drawing a machine secret: {e}"))?;
    Ok(lazare_proto::hex(&raw))
}

/// What is stored: a leaked database does not let anyone speak for a PC.
/// The secrets are 256 random bits, so a plain hash is enough.
fn secret_hash(secret: &str) -> String {
    lazare_proto::hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares digests, so the time taken says nothing about the secret.
fn proves(proof: Option<&str>, hash: &str) -> Result<(), Refusal> {
    match proof {
        None => Err(Refusal::NoProof),
        Some(p) if Sha256::digest(secret_hash(p)) == Sha256::digest(hash) => Ok(()),
        Some(_) => Err(Refusal::WrongProof),
    }
}

impl Store {
    /// Records a hello. A machine that enrolled must prove it with `proof`,
    /// else nothing changes. A new machine gets a secret and is accepted by
    /// `rule`. An accepted machine starts a new install (which clears its
    /// pending reinstall: it is doing it now) and older installs' events and
    /// logs beyond [`super::store::KEEP_INSTALLS`] are dropped.
    pub fn hello(
        &self,
        inv: &Inventory,
        now: i64,
        proof: Option<&str>,
        rule: EnrollRule,
    ) -> Result<HelloOutcome> {
        let mut conn = self.conn();
        let tx = conn.transaction().context("starting a transaction")?;
        let id = &inv.machine_id;
        let known: Option<(Option<String>, bool, bool)> = tx
            .query_row(
                "SELECT secret_hash, secret_confirmed, accepted FROM machines WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .context("reading the machine")?;
        let json = serde_json::to_string(inv).context("encoding the inventory")?;
        let (accepted, new_secret) = match known {
            Some((Some(hash), confirmed, accepted)) => match proves(proof, &hash) {
                Ok(()) => {
                    confirm(&tx, id)?;
                    (accepted, None)
                }
                // The answer that carried the secret may never have arrived
                // (a cut cable, a 503 while no image was ready): until the
                // machine has used its secret once, a hello without one
                // gets a new one.
                Err(Refusal::NoProof) if !confirmed => (accepted, Some(new_secret()?)),
                Err(r) => return Ok(HelloOutcome::Refused(r)),
            },
            Some((None, _, accepted)) => (accepted, Some(new_secret()?)),
            None => {
                let count: i64 = tx
                    .query_row("SELECT count(*) FROM machines", [], |r| r.get(0))
                    .context("counting machines")?;
                if count >= MAX_MACHINES {
                    return Ok(HelloOutcome::Refused(Refusal::Full));
                }
                let until = window_until(&tx)?;
                let accepted = rule.accepts(now, until);
                tx.execute(
                    "INSERT INTO machines (id, seq, status, first_seen, last_seen, inventory, accepted)
                     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM machines), 'seen', ?2, ?2,
                             ?3, ?4)",
                    params![id, now, json, accepted],
                )
                .context("inserting the machine")?;
                (accepted, Some(new_secret()?))
            }
        };
        if let Some(secret) = &new_secret {
            tx.execute(
                "UPDATE machines SET secret_hash = ?2, secret_confirmed = 0 WHERE id = ?1",
                params![id, secret_hash(secret)],
            )
            .context("storing the machine secret")?;
        }
        // A PC waiting for acceptance asks every minute: that is no install.
        let started = i64::from(accepted);
        tx.execute(
            "UPDATE machines SET status = 'seen', last_seen = ?2, inventory = ?3,
                 install = install + ?4,
                 reinstall = CASE WHEN ?4 = 1 THEN NULL ELSE reinstall END
             WHERE id = ?1",
            params![id, now, json, started],
        )
        .context("updating the machine")?;
        let (seq, install): (i64, i64) = tx
            .query_row("SELECT seq, install FROM machines WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .context("reading the machine back")?;
        let oldest_kept = install - super::store::KEEP_INSTALLS;
        for table in ["events", "logs"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE machine = ?1 AND install <= ?2"),
                params![id, oldest_kept],
            )
            .with_context(|| format!("dropping old {table}"))?;
        }
        tx.commit().context("committing the hello")?;
        let rec = HelloRecord { seq: seq as u64, install: install as u32 };
        Ok(HelloOutcome::In { rec, accepted, new_secret })
    }

    /// Checks a machine's proof for a call after its hello.
    pub fn check_machine(&self, id: &str, proof: Option<&str>) -> Result<Result<(), Refusal>> {
        let conn = self.conn();
        let hash: Option<Option<String>> = conn
            .query_row("SELECT secret_hash FROM machines WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .context("reading the machine secret")?;
        let checked = match hash {
            None => Err(Refusal::Unknown),
            Some(None) => Err(Refusal::NotEnrolled),
            Some(Some(hash)) => proves(proof, &hash),
        };
        if checked.is_ok() {
            confirm(&conn, id)?;
        }
        Ok(checked)
    }

    /// Accepts a waiting machine; `false` when unknown.
    pub fn accept(&self, id: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("UPDATE machines SET accepted = 1 WHERE id = ?1", [id])
            .context("accepting the machine")?;
        Ok(n > 0)
    }

    /// Lets a machine enrol again (its disk died with its secret): the old
    /// secret stops working, the next hello gets a new one. Its history and
    /// host name stay. `false` when unknown.
    pub fn reenroll(&self, id: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("UPDATE machines SET secret_hash = NULL, accepted = 1 WHERE id = ?1", [id])
            .context("letting the machine enrol again")?;
        Ok(n > 0)
    }

    /// Forgets a machine, its events and logs; its next hello is a new PC's
    /// (subject to the enrol rule). `false` when unknown.
    pub fn forget(&self, id: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().context("starting a transaction")?;
        tx.execute("DELETE FROM events WHERE machine = ?1", [id]).context("deleting events")?;
        tx.execute("DELETE FROM logs WHERE machine = ?1", [id]).context("deleting logs")?;
        let n = tx.execute("DELETE FROM machines WHERE id = ?1", [id]).context("deleting")?;
        tx.commit().context("committing the deletion")?;
        Ok(n > 0)
    }

    /// Accepts new PCs for `hours` from `now` (0 closes the window).
    pub fn open_window(&self, now: i64, hours: u32) -> Result<i64> {
        let until = now + i64::from(hours) * HOUR_MS;
        self.conn()
            .execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![ENROLL_UNTIL, until],
            )
            .context("opening the enrol window")?;
        Ok(until)
    }

    /// End of the enrol window (ms since the epoch), if one was ever opened.
    pub fn enroll_until(&self) -> Result<Option<i64>> {
        window_until(&self.conn())
    }
}

/// The machine used its secret: from now on only the secret lets it in.
fn confirm(conn: &rusqlite::Connection, id: &str) -> Result<()> {
    conn.execute(
        "UPDATE machines SET secret_confirmed = 1 WHERE id = ?1 AND secret_confirmed = 0",
        [id],
    )
    .context("confirming the machine secret")?;
    Ok(())
}

fn window_until(conn: &rusqlite::Connection) -> Result<Option<i64>> {
    conn.query_row("SELECT value FROM settings WHERE name = ?1", [ENROLL_UNTIL], |r| r.get(0))
        .optional()
        .context("reading the enrol window")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(c: char) -> Inventory {
        serde_json::from_value(serde_json::json!({
            "machine_id": c.to_string().repeat(64), "memory_bytes": 1u64 << 30, "cpus": 1,
            "cpu_model": "x", "firmware": "bios", "dmi": {}, "disks": [], "nics": [],
            "boot_device": null
        }))
        .unwrap()
    }

    fn secret(o: HelloOutcome) -> (bool, Option<String>) {
        match o {
            HelloOutcome::In { accepted, new_secret, .. } => (accepted, new_secret),
            HelloOutcome::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    #[test]
    fn window_rule_accepts_only_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let w = EnrollRule::Window;
        // Never opened: waits.
        assert!(!secret(s.hello(&inv('a'), 10, None, w).unwrap()).0);
        s.open_window(10, 1).unwrap();
        assert!(secret(s.hello(&inv('b'), 20, None, w).unwrap()).0);
        assert!(!secret(s.hello(&inv('c'), 10 + HOUR_MS, None, w).unwrap()).0);
        assert!(secret(s.hello(&inv('d'), 0, None, EnrollRule::Open).unwrap()).0);
        assert!(!secret(s.hello(&inv('e'), 0, None, EnrollRule::Approve).unwrap()).0);
        assert!(s.accept(&inv('e').machine_id).unwrap());
    }

    #[test]
    fn a_known_machine_must_prove_itself_and_can_be_let_in_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let id = inv('a').machine_id;
        let (_, first) = secret(s.hello(&inv('a'), 1, None, EnrollRule::Open).unwrap());
        let lost = first.unwrap();
        // The answer was lost: a hello without proof gets a new secret.
        let (_, first) = secret(s.hello(&inv('a'), 1, None, EnrollRule::Open).unwrap());
        let first = first.unwrap();
        assert_ne!(first, lost);
        assert_eq!(first.len(), 64);
        assert_eq!(s.check_machine(&id, Some(&lost)).unwrap(), Err(Refusal::WrongProof));
        // Once used, the secret alone lets the machine in.
        assert_eq!(s.check_machine(&id, Some(&first)).unwrap(), Ok(()));
        let refused = |o: HelloOutcome| match o {
            HelloOutcome::Refused(r) => r,
            HelloOutcome::In { .. } => panic!("let in"),
        };
        assert_eq!(
            refused(s.hello(&inv('a'), 2, None, EnrollRule::Open).unwrap()),
            Refusal::NoProof
        );
        let wrong = "0".repeat(64);
        assert_eq!(
            refused(s.hello(&inv('a'), 2, Some(&wrong), EnrollRule::Open).unwrap()),
            Refusal::WrongProof
        );
        assert_eq!(s.check_machine(&id, Some(&first)).unwrap(), Ok(()));
        assert_eq!(s.check_machine(&id, Some(&wrong)).unwrap(), Err(Refusal::WrongProof));
        let (_, again) = secret(s.hello(&inv('a'), 3, Some(&first), EnrollRule::Open).unwrap());
        assert!(again.is_none(), "a proven hello keeps the secret");
        assert!(s.reenroll(&id).unwrap());
        assert_eq!(s.check_machine(&id, Some(&first)).unwrap(), Err(Refusal::NotEnrolled));
        let (accepted, second) = secret(s.hello(&inv('a'), 4, None, EnrollRule::Approve).unwrap());
        assert!(accepted, "a machine let in again stays accepted");
        assert_ne!(second.unwrap(), first);
        assert!(s.forget(&id).unwrap());
        assert_eq!(s.check_machine(&id, Some(&first)).unwrap(), Err(Refusal::Unknown));
    }
}
