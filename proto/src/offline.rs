//! The offline bundle (`lazare build --offline`): a plan template signed by
//! the server's key, which a PC that cannot reach the server fills in for
//! itself, and the report of such an install that the installed system
//! hands to the server at its first contact.

use serde::{Deserialize, Serialize};

use crate::{Action, Event, Inventory, Plan, PlanError, Setup};

/// The `kind` every template carries. A server plan has no such field and a
/// template has no `machine_id`: neither signed body parses as the other.
pub const TEMPLATE_KIND: &str = "lazare-offline-template";

/// Where the bundle sits on the boot medium, and its files in it.
pub const OFFLINE_DIR: &str = "/lazare/offline";
pub const TEMPLATE_FILE: &str = "plan.json";
/// The template's `ed25519:BASE64` signature, one line.
pub const SIGNATURE_FILE: &str = "plan.json.sig";

/// Where the agent keeps the report on the installed system, for
/// `lazare-next` to send (it renames it to `<name>.sent` once the server
/// took it).
pub const REPORT_PATH: &str = "/var/lib/lazare/offline-report.json";

/// A plan for any machine: the [`Setup`], and how a PC names itself.
/// `setup.image.url` is the image's file name in [`OFFLINE_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTemplate {
    pub kind: String,
    /// Host names are this prefix and the first network card's MAC
    /// (`pc-525400123456`): the same on every PC, unique without a server.
    pub hostname_prefix: String,
    #[serde(flatten)]
    pub setup: Setup,
    /// Unix time the bundle was made (shown in the log).
    pub created: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("not an offline plan template (kind {0:?})")]
    Kind(String),
    #[error("the offline plan template is not valid JSON: {0}")]
    Json(String),
    #[error("the host name prefix {0:?} gives no valid host name")]
    Prefix(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl PlanTemplate {
    /// Parses a (signature-verified) template body.
    pub fn parse(body: &[u8]) -> Result<Self, TemplateError> {
        let t: PlanTemplate =
            serde_json::from_slice(body).map_err(|e| TemplateError::Json(e.to_string()))?;
        if t.kind != TEMPLATE_KIND {
            return Err(TemplateError::Kind(t.kind));
        }
        Ok(t)
    }

    /// The host name of the machine `inv`: the prefix and its first wired
    /// NIC's MAC without colons, else the first 12 hex digits of its id.
    pub fn hostname_for(&self, inv: &Inventory) -> String {
        let tail = match inv.nics.iter().map(|n| n.mac.replace(':', "")).find(|m| !m.is_empty()) {
            Some(mac) => mac,
            None => inv.machine_id.chars().take(12).collect(),
        };
        format!("{}{tail}", self.hostname_prefix).to_ascii_lowercase()
    }

    /// The install plan of machine `inv`, checked like a server's plan.
    pub fn plan_for(&self, inv: &Inventory) -> Result<Plan, TemplateError> {
        let plan = Plan {
            machine_id: inv.machine_id.clone(),
            hostname: self.hostname_for(inv),
            action: Action::Install,
            setup: self.setup.clone(),
            // No hello, so nothing to echo: the signature on a template made
            // for every machine is what makes it trusted.
            nonce: String::new(),
            challenge: String::new(),
            valid_secs: 0,
        };
        plan.validate_for(&inv.machine_id)?;
        Ok(plan)
    }
}

/// One event as the offline agent recorded it, with its own clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Unix seconds on the PC's clock (an old PC's may be off).
    pub time: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// `POST /api/v1/machines/{id}/offline`: an install made from an offline
/// bundle, sent by the installed system's `lazare-next` at its first
/// contact. The server records the machine, its plan, events and log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineReport {
    pub inventory: Inventory,
    pub hostname: String,
    /// The image's profile name.
    pub image: String,
    pub events: Vec<RecordedEvent>,
    /// The agent's log, as it would have uploaded it.
    pub log: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dmi, Firmware, Nic};

    fn template() -> PlanTemplate {
        crate::testing::template("test.tar.zst", 10)
    }

    fn inv(macs: &[&str]) -> Inventory {
        Inventory {
            machine_id: "c".repeat(64),
            memory_bytes: 1 << 30,
            cpus: 1,
            cpu_model: "Pentium 4".into(),
            firmware: Firmware::Bios,
            dmi: Dmi::default(),
            disks: vec![],
            nics: macs
                .iter()
                .map(|m| Nic {
                    name: "eth0".into(),
                    mac: m.to_string(),
                    driver: None,
                    carrier: false,
                })
                .collect(),
            boot_device: Some("sr0".into()),
            agent_version: String::new(),
            installed_id: None,
        }
    }

    #[test]
    fn a_machine_fills_in_its_id_and_a_hostname_from_its_mac() {
        let plan = template().plan_for(&inv(&["52:54:00:12:34:56"])).unwrap();
        assert_eq!(plan.hostname, "pc-525400123456");
        assert_eq!(plan.machine_id, "c".repeat(64));
        assert_eq!(plan.action, Action::Install);
        assert_eq!(plan.setup, template().setup);
        // No NIC: the id names it.
        assert_eq!(template().plan_for(&inv(&[])).unwrap().hostname, "pc-cccccccccccc");
    }

    #[test]
    fn a_bad_prefix_fails_like_a_bad_server_plan() {
        let mut t = template();
        t.hostname_prefix = "pc_".into();
        let e = t.plan_for(&inv(&["52:54:00:12:34:56"])).unwrap_err();
        assert!(matches!(e, TemplateError::Plan(PlanError::BadHostname(_))), "{e}");
    }

    #[test]
    fn the_orders_period_defaults_to_15_minutes_and_has_a_floor() {
        let mut json = serde_json::to_value(template()).unwrap();
        json.as_object_mut().unwrap().remove("orders_every_secs");
        let old = PlanTemplate::parse(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(old.plan_for(&inv(&[])).unwrap().setup.orders_every_secs, 900);
        let mut t = template();
        t.setup.orders_every_secs = crate::MIN_ORDERS_EVERY_SECS - 1;
        let e = t.plan_for(&inv(&[])).unwrap_err();
        assert!(matches!(e, TemplateError::Plan(PlanError::OrdersTooOften(29))), "{e}");
    }

    #[test]
    fn a_template_and_a_server_plan_never_pass_for_each_other() {
        let body = serde_json::to_vec(&template()).unwrap();
        assert_eq!(PlanTemplate::parse(&body).unwrap(), template());
        assert!(serde_json::from_slice::<Plan>(&body).is_err());
        let plan = template().plan_for(&inv(&[])).unwrap();
        let plan_body = serde_json::to_vec(&plan).unwrap();
        assert!(PlanTemplate::parse(&plan_body).is_err());
        let mut other = template();
        other.kind = "something-else".into();
        let e = PlanTemplate::parse(&serde_json::to_vec(&other).unwrap()).unwrap_err();
        assert_eq!(e, TemplateError::Kind("something-else".into()));
    }

    #[test]
    fn a_report_round_trips_with_flat_events() {
        let ev = RecordedEvent {
            time: 5,
            event: Event {
                phase: crate::Phase::Installed,
                percent: None,
                message: "ok".into(),
                from_peers: None,
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(json, r#"{"time":5,"phase":"installed","percent":null,"message":"ok"}"#);
        let r = OfflineReport {
            inventory: inv(&[]),
            hostname: "pc-1".into(),
            image: "test".into(),
            events: vec![ev],
            log: "log".into(),
        };
        let back: OfflineReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
