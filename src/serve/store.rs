//! The server's memory: machines, their events and install logs in SQLite.
//!
//! One connection behind a mutex: SQLite serialises writers anyway, and 40
//! PCs sending a few events a second are far below what one connection
//! commits. WAL keeps readers (the dashboard) cheap and survives a killed
//! server.

use anyhow::{Context, Result};
use lazare_proto::{Event, Inventory, MachineStatus, Phase};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS machines (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    status TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    inventory TEXT NOT NULL,
    hostname TEXT NOT NULL DEFAULT '',
    image TEXT,
    install INTEGER NOT NULL DEFAULT 0,
    reinstall INTEGER,
    secret_hash TEXT,
    secret_confirmed INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 1,
    from_peers INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    machine TEXT NOT NULL REFERENCES machines(id),
    install INTEGER NOT NULL,
    time INTEGER NOT NULL,
    phase TEXT NOT NULL,
    percent INTEGER,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_machine ON events(machine, id);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    machine TEXT NOT NULL REFERENCES machines(id),
    install INTEGER NOT NULL,
    time INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_machine ON logs(machine, id);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Columns added after the first release, for databases made before them.
const MIGRATIONS: &[(&str, &str)] = &[
    ("secret_hash", "ALTER TABLE machines ADD COLUMN secret_hash TEXT"),
    ("accepted", "ALTER TABLE machines ADD COLUMN accepted INTEGER NOT NULL DEFAULT 1"),
    (
        "secret_confirmed",
        "ALTER TABLE machines ADD COLUMN secret_confirmed INTEGER NOT NULL DEFAULT 0",
    ),
    ("from_peers", "ALTER TABLE machines ADD COLUMN from_peers INTEGER"),
];

pub struct Store {
    conn: Mutex<Connection>,
    /// True when this open created the database (a first start).
    pub created: bool,
}

/// One row of `GET /api/v1/machines`.
#[derive(Debug, Clone, Serialize)]
pub struct MachineSummary {
    pub id: String,
    pub hostname: String,
    pub status: MachineStatus,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub last_seen: String,
    /// Image profile of the last plan.
    pub image: Option<String>,
    /// Number of hellos so far; events and logs are kept per install.
    pub install: u32,
    pub reinstall_pending: bool,
    /// Accepted by the enrolment rule or the admin; a PC not accepted waits.
    pub accepted: bool,
    /// Holds a machine secret (false after "let it enrol again").
    pub enrolled: bool,
    /// Bytes of its image it got through the room's engine, last install.
    pub from_peers: Option<u64>,
    pub last_event: Option<EventRecord>,
    pub hardware: Hardware,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hardware {
    pub cpu: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub firmware: lazare_proto::Firmware,
    /// `sda 8.0 GiB HDD "QEMU HARDDISK"`.
    pub disks: Vec<String>,
    /// `eth0 52:54:00:12:34:56 e1000 link`.
    pub nics: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub time: String,
    pub install: u32,
    pub phase: Phase,
    pub percent: Option<u8>,
    pub message: String,
}

/// The log text of one install, chunks joined in arrival order.
#[derive(Debug, Clone, Serialize)]
pub struct InstallLog {
    pub install: u32,
    pub text: String,
}

/// `GET /api/v1/machines/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct MachineDetail {
    #[serde(flatten)]
    pub summary: MachineSummary,
    pub inventory: Inventory,
    pub events: Vec<EventRecord>,
    pub logs: Vec<InstallLog>,
}

/// Bounds the disk one looping agent can fill: the log of one install...
pub const MAX_LOG_PER_INSTALL: usize = 4 * 1024 * 1024;
/// ...the installs whose events and logs are kept per machine...
pub const KEEP_INSTALLS: i64 = 3;
/// ...the events kept per machine (an install sends about 150)...
pub const MAX_EVENTS_PER_MACHINE: i64 = 2000;
/// ...and, in total, the machines and the log bytes of all of them.
pub const MAX_MACHINES: i64 = 5000;
pub const MAX_LOG_TOTAL: i64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum LogOutcome {
    Stored,
    UnknownMachine,
    /// The install's log would pass [`MAX_LOG_PER_INSTALL`].
    Full,
    /// All logs together would pass [`MAX_LOG_TOTAL`].
    ServerFull,
}

/// What a hello changed.
#[derive(Debug)]
pub struct HelloRecord {
    /// Order in which the server first saw this PC (1, 2, …): the `{n}` of host names.
    pub seq: u64,
    pub install: u32,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn status_name(s: MachineStatus) -> &'static str {
    match s {
        MachineStatus::Seen => "seen",
        MachineStatus::Installing => "installing",
        MachineStatus::Installed => "installed",
        MachineStatus::Failed => "failed",
    }
}

/// Enum ↔ text through serde, so the database uses the API's names.
fn from_name<T: serde::de::DeserializeOwned>(name: &str) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn phase_name(p: Phase) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let created = !path.exists();
        // Created private before SQLite opens it: it holds serial numbers,
        // MACs, logs and machine-secret hashes. SQLite gives the -wal and
        // -shm files the database's mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10)).context("setting the busy timeout")?;
        // NORMAL in WAL mode: a killed server loses nothing; a power cut may
        // lose the last commits, which the agents resend (hello, events).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        )
        .context("configuring SQLite")?;
        conn.execute_batch(SCHEMA).context("creating the database tables")?;
        for (column, sql) in MIGRATIONS {
            let has: bool = conn
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info('machines') WHERE name = ?1",
                    [column],
                    |r| r.get(0),
                )
                .context("reading the database columns")?;
            if !has {
                conn.execute_batch(sql).with_context(|| format!("adding column {column}"))?;
            }
        }
        // Databases made by older versions were world-readable.
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", p.display()))?;
            }
        }
        Ok(Store { conn: Mutex::new(conn), created })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the
        // transaction rolls back on drop), so the poison can be ignored.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the server knew of the machine before this hello (nothing for
    /// a new one): installed, and whether a reinstall is ordered.
    pub fn standing(&self, id: &str) -> Result<super::plan::Standing> {
        let row: Option<(String, bool)> = self
            .conn()
            .query_row(
                "SELECT status, reinstall IS NOT NULL FROM machines WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("reading the machine's standing")?;
        Ok(row.map_or_else(Default::default, |(status, reinstall_ordered)| super::plan::Standing {
            installed: status == status_name(MachineStatus::Installed),
            reinstall_ordered,
        }))
    }

    /// Remembers what the last plan gave the machine.
    pub fn set_plan(&self, id: &str, hostname: &str, image: &str) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE machines SET hostname = ?2, image = ?3 WHERE id = ?1",
                params![id, hostname, image],
            )
            .context("recording the plan")?;
        Ok(())
    }

    /// Stores an event; `false` when the machine is unknown.
    pub fn add_event(&self, id: &str, ev: &Event, now: i64) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().context("starting a transaction")?;
        let n = tx
            .execute(
                "UPDATE machines SET status = ?2, last_seen = ?3 WHERE id = ?1",
                params![id, status_name(ev.phase.status()), now],
            )
            .context("updating the machine status")?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(bytes) = ev.from_peers {
            tx.execute("UPDATE machines SET from_peers = ?2 WHERE id = ?1", params![id, bytes])
                .context("recording the bytes from the room")?;
        }
        tx.execute(
            "INSERT INTO events (machine, install, time, phase, percent, message)
             SELECT id, install, ?2, ?3, ?4, ?5 FROM machines WHERE id = ?1",
            params![id, now, phase_name(ev.phase), ev.percent, ev.message],
        )
        .context("inserting the event")?;
        // A looping agent keeps its newest events, not all of them.
        tx.execute(
            "DELETE FROM events WHERE machine = ?1 AND id <= (SELECT id FROM events
                 WHERE machine = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            params![id, MAX_EVENTS_PER_MACHINE],
        )
        .context("dropping old events")?;
        tx.commit().context("committing the event")?;
        Ok(true)
    }

    /// Appends a chunk of install log. An agent may also re-send its whole
    /// log so far: when the upload starts with what this install already
    /// stored, only the rest is kept.
    pub fn add_log(&self, id: &str, text: &str, now: i64) -> Result<LogOutcome> {
        let mut conn = self.conn();
        let tx = conn.transaction().context("starting a transaction")?;
        let stored: String = tx
            .query_row(
                "SELECT COALESCE(group_concat(l.text, '' ORDER BY l.id), '') FROM logs l
                 JOIN machines m ON m.id = l.machine AND m.install = l.install
                 WHERE l.machine = ?1",
                [id],
                |r| r.get(0),
            )
            .context("reading the stored log")?;
        let text = match text.strip_prefix(stored.as_str()) {
            Some(rest) if !stored.is_empty() => rest,
            _ => text,
        };
        if stored.len() + text.len() > MAX_LOG_PER_INSTALL {
            return Ok(LogOutcome::Full);
        }
        let total: i64 = tx
            .query_row("SELECT COALESCE(SUM(length(CAST(text AS BLOB))), 0) FROM logs", [], |r| {
                r.get(0)
            })
            .context("measuring all logs")?;
        if total + text.len() as i64 > MAX_LOG_TOTAL {
            return Ok(LogOutcome::ServerFull);
        }
        let n = tx
            .execute(
                "INSERT INTO logs (machine, install, time, text)
                 SELECT id, install, ?2, ?3 FROM machines WHERE id = ?1",
                params![id, now, text],
            )
            .context("inserting the log")?;
        if n == 0 {
            return Ok(LogOutcome::UnknownMachine);
        }
        tx.execute("UPDATE machines SET last_seen = ?2 WHERE id = ?1", params![id, now])
            .context("updating last seen")?;
        tx.commit().context("committing the log")?;
        Ok(LogOutcome::Stored)
    }

    /// Asks the machine to reinstall at its next check; `false` when unknown.
    pub fn request_reinstall(&self, id: &str, now: i64) -> Result<bool> {
        let n = self
            .conn()
            .execute("UPDATE machines SET reinstall = ?2 WHERE id = ?1", params![id, now])
            .context("recording the reinstall request")?;
        Ok(n > 0)
    }

    /// Whether a reinstall is pending; `None` when the machine is unknown.
    pub fn reinstall_pending(&self, id: &str) -> Result<Option<bool>> {
        self.conn()
            .query_row("SELECT reinstall IS NOT NULL FROM machines WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .context("reading the reinstall request")
    }

    pub fn machines(&self) -> Result<Vec<MachineSummary>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("{SUMMARY_SELECT} ORDER BY seq")).context("listing machines")?;
        let rows = stmt.query_map([], summary_row).context("listing machines")?;
        let mut out = Vec::new();
        for row in rows {
            let mut m = row.context("reading a machine")?;
            m.last_event = events(&conn, &m.id, Some(1))?.pop();
            out.push(m);
        }
        Ok(out)
    }

    pub fn machine(&self, id: &str) -> Result<Option<MachineDetail>> {
        let conn = self.conn();
        let row = conn
            .query_row(&format!("{SUMMARY_SELECT} WHERE id = ?1"), [id], |r| {
                Ok((summary_row(r)?, r.get::<_, String>(8)?))
            })
            .optional()
            .context("reading the machine")?;
        let Some((mut summary, inv_json)) = row else { return Ok(None) };
        let inventory = serde_json::from_str(&inv_json).context("decoding the stored inventory")?;
        let evs = events(&conn, id, None)?;
        summary.last_event = evs.last().cloned();
        let logs = logs(&conn, id)?;
        Ok(Some(MachineDetail { summary, inventory, events: evs, logs }))
    }
}

const SUMMARY_SELECT: &str = "SELECT id, hostname, status, first_seen, last_seen, image, install,
    reinstall IS NOT NULL, inventory, accepted, secret_hash IS NOT NULL, from_peers FROM machines";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MachineSummary> {
    let inv_json: String = r.get(8)?;
    let inv: Inventory = serde_json::from_str(&inv_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, e.into())
    })?;
    let status: String = r.get(2)?;
    Ok(MachineSummary {
        id: r.get(0)?,
        hostname: r.get(1)?,
        status: from_name(&status)?,
        first_seen: rfc3339(r.get(3)?),
        last_seen: rfc3339(r.get(4)?),
        image: r.get(5)?,
        install: r.get::<_, i64>(6)? as u32,
        reinstall_pending: r.get(7)?,
        accepted: r.get(9)?,
        enrolled: r.get(10)?,
        from_peers: r.get::<_, Option<i64>>(11)?.map(|b| b as u64),
        last_event: None,
        hardware: Hardware::of(&inv),
    })
}

/// Events of one machine in order; with `last`, only the newest ones.
fn events(conn: &Connection, id: &str, last: Option<u32>) -> Result<Vec<EventRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT time, install, phase, percent, message FROM events WHERE machine = ?1
             ORDER BY id DESC LIMIT ?2",
        )
        .context("reading events")?;
    let limit = last.map_or(-1, i64::from);
    let rows = stmt
        .query_map(params![id, limit], |r| {
            let phase: String = r.get(2)?;
            Ok(EventRecord {
                time: rfc3339(r.get(0)?),
                install: r.get::<_, i64>(1)? as u32,
                phase: from_name(&phase)?,
                percent: r.get(3)?,
                message: r.get(4)?,
            })
        })
        .context("reading events")?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading events")?;
    out.reverse();
    Ok(out)
}

fn logs(conn: &Connection, id: &str) -> Result<Vec<InstallLog>> {
    let mut stmt = conn
        .prepare_cached("SELECT install, text FROM logs WHERE machine = ?1 ORDER BY id")
        .context("reading logs")?;
    let rows = stmt
        .query_map([id], |r| Ok((r.get::<_, i64>(0)? as u32, r.get::<_, String>(1)?)))
        .context("reading logs")?;
    let mut out: Vec<InstallLog> = Vec::new();
    for row in rows {
        let (install, text) = row.context("reading a log chunk")?;
        match out.last_mut() {
            Some(l) if l.install == install => l.text.push_str(&text),
            _ => out.push(InstallLog { install, text }),
        }
    }
    Ok(out)
}

impl Hardware {
    pub fn of(inv: &Inventory) -> Hardware {
        let disks = inv
            .disks
            .iter()
            .map(|d| {
                let kind = if d.removable {
                    "removable"
                } else if d.rotational {
                    "HDD"
                } else {
                    "SSD"
                };
                let model =
                    d.model.as_deref().map(|m| format!(" \"{}\"", m.trim())).unwrap_or_default();
                format!("{} {} {kind}{model}", d.name, human_bytes(d.size_bytes))
            })
            .collect();
        let nics = inv
            .nics
            .iter()
            .map(|n| {
                let driver = n.driver.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
                let link = if n.carrier { "link" } else { "no link" };
                format!("{} {}{driver} {link}", n.name, n.mac)
            })
            .collect();
        Hardware {
            cpu: inv.cpu_model.trim().to_string(),
            cpus: inv.cpus,
            memory_bytes: inv.memory_bytes,
            firmware: inv.firmware,
            disks,
            nics,
        }
    }
}

/// `512 MiB`, `8.0 GiB`: what a volunteer reads on a sticker.
pub fn human_bytes(n: u64) -> String {
    const GIB: f64 = lazare_proto::GIB as f64;
    if n >= lazare_proto::GIB {
        format!("{:.1} GiB", n as f64 / GIB)
    } else {
        format!("{} MiB", n / lazare_proto::MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::super::enroll::{EnrollRule, HelloOutcome};
    use super::*;

    impl Store {
        fn hello_open(&self, inv: &Inventory, now: i64) -> HelloRecord {
            match self.hello(inv, now, None, EnrollRule::Open, false).unwrap() {
                HelloOutcome::In { rec, .. } => rec,
                HelloOutcome::Refused(r) => panic!("refused: {r:?}"),
            }
        }
    }

    fn inv() -> Inventory {
        serde_json::from_value(serde_json::json!({
            "machine_id": "c".repeat(64), "memory_bytes": 1u64 << 30, "cpus": 2,
            "cpu_model": "Athlon", "firmware": "uefi", "dmi": {}, "nics": [],
            "disks": [{"name": "sda", "size_bytes": 8u64 << 30, "model": null, "serial": null,
                       "removable": false, "rotational": false, "partitions": []}],
            "boot_device": null
        }))
        .unwrap()
    }

    #[test]
    fn logs_append_chunks_and_absorb_resent_whole_logs() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let id = inv().machine_id;
        assert_eq!(s.add_log(&id, "x", 1).unwrap(), LogOutcome::UnknownMachine);
        s.hello_open(&inv(), 1);
        s.add_log(&id, "a\n", 2).unwrap();
        s.add_log(&id, "a\nb\n", 3).unwrap(); // whole log so far
        s.add_log(&id, "c\n", 4).unwrap(); // a chunk
        s.add_log(&id, "a\nb\nc\n", 5).unwrap(); // nothing new
        s.reenroll(&id).unwrap();
        let rec = s.hello_open(&inv(), 6);
        assert_eq!(rec.install, 2);
        s.add_log(&id, "a\n", 7).unwrap(); // a new install starts afresh
        let big = "x".repeat(MAX_LOG_PER_INSTALL);
        assert_eq!(s.add_log(&id, &big, 8).unwrap(), LogOutcome::Full);
        let logs = s.machine(&id).unwrap().unwrap().logs;
        assert_eq!(logs.len(), 2);
        assert_eq!((logs[0].install, logs[0].text.as_str()), (1, "a\nb\nc\n"));
        assert_eq!((logs[1].install, logs[1].text.as_str()), (2, "a\n"));
    }

    #[test]
    fn status_follows_events_and_hello_resets_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let id = inv().machine_id;
        s.hello_open(&inv(), 1_700_000_000_000);
        let ev = |phase| Event { phase, percent: None, message: String::new(), from_peers: None };
        s.add_event(&id, &ev(Phase::Format), 2).unwrap();
        assert_eq!(s.machines().unwrap()[0].status, MachineStatus::Installing);
        s.add_event(&id, &ev(Phase::Failed), 3).unwrap();
        let m = &s.machines().unwrap()[0];
        assert_eq!(m.status, MachineStatus::Failed);
        assert_eq!(m.last_event.as_ref().unwrap().phase, Phase::Failed);
        assert_eq!(m.first_seen, "2023-11-14T22:13:20Z");
        assert_eq!(m.hardware.disks, ["sda 8.0 GiB SSD"]);
        s.reenroll(&id).unwrap();
        s.hello_open(&inv(), 4);
        assert_eq!(s.machines().unwrap()[0].status, MachineStatus::Seen);
    }
}
