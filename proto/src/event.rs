//! Progress events, machine status and the installed system's "what next".

use serde::{Deserialize, Serialize};

/// `POST /api/v1/machines/{id}/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub phase: Phase,
    /// 0–100 within the phase, when the phase can measure it.
    pub percent: Option<u8>,
    pub message: String,
    /// Bytes of the image this PC got through the room's engine (issue 15),
    /// on the event that ends its download; the dashboard shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_peers: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Hardware,
    Network,
    Hello,
    Plan,
    Partition,
    Format,
    Download,
    Configure,
    Bootloader,
    /// The install finished; the machine reboots into it.
    Installed,
    /// The install stopped; the message says why.
    Failed,
}

impl Phase {
    /// The machine status an event of this phase moves the machine to.
    pub fn status(self) -> MachineStatus {
        match self {
            Phase::Hardware | Phase::Network | Phase::Hello => MachineStatus::Seen,
            Phase::Installed => MachineStatus::Installed,
            Phase::Failed => MachineStatus::Failed,
            _ => MachineStatus::Installing,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineStatus {
    Seen,
    Installing,
    Installed,
    Failed,
}

/// `GET /api/v1/machines/{id}/next`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Next {
    pub action: NextAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NextAction {
    None,
    Reinstall,
}
