//! Types that cross a process boundary between the lazare agent and the
//! install server (DESIGN.md "Server API" and "Plan"). Both sides depend on
//! this crate; nothing here is ever copied into another crate.

mod chunks;
mod enroll;
mod event;
mod inventory;
mod offline;
mod plan;
mod room;
mod sign;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use chunks::{
    chunk_size_for, encoded_len, read_full, ChunkCheck, ChunkError, ChunkIndex, Indexed,
    CHUNK_SIZE, INDEX_SUFFIX,
};
pub use enroll::{
    machine_auth, parse_machine_auth, valid_token_hex, CHALLENGE_BYTES, CHALLENGE_HEADER,
    MACHINE_AUTH_SCHEME, PLAN_VALID_SECS, SECRET_HEADER,
};
pub use event::{Event, MachineStatus, Next, NextAction, Phase};
pub use inventory::{hex, unhex, valid_machine_id, MacAddr, MacError};
pub use inventory::{
    Disk, Dmi, Firmware, Inventory, InventoryError, Nic, Partition, PartitionTable,
};
pub use offline::{
    OfflineReport, PlanTemplate, RecordedEvent, TemplateError, OFFLINE_DIR, REPORT_PATH,
    SIGNATURE_FILE, TEMPLATE_FILE, TEMPLATE_KIND,
};
pub use plan::{valid_hostname, valid_user_name, DEFAULT_ORDERS_EVERY_SECS, MIN_ORDERS_EVERY_SECS};
pub use plan::{
    Action, DiskPolicy, HomePolicy, ImageFormat, ImageManifest, ImageRef, Pinned, Plan, PlanError,
    Room, Setup, SwapPolicy, TablePreference, User, ENGINE_PATH, TOOLS_SUFFIX, TORRENT_SUFFIX,
};
pub use room::{engine_port, EngineSource, ENGINE_FILE, ENGINE_SOURCE_PATH};
pub use sign::{PublicKey, SignError, SigningKey, SIGNATURE_HEADER};

/// Size of one mebibyte; disk layouts align to it.
pub const MIB: u64 = 1024 * 1024;
/// Size of one gibibyte.
pub const GIB: u64 = 1024 * MIB;
