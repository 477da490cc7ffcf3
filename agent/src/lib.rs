//! The lazare install agent. `main.rs` only dispatches; everything lives here
//! so tests can call it.

pub mod benchcli;
pub mod config;
pub mod entropy;
pub mod failure;
pub mod flow;
pub mod http;
pub mod hw;
pub mod i18n;
pub mod init;
pub mod install;
pub mod installing;
pub mod inventory;
pub mod net;
pub mod offline;
pub mod plancli;
pub mod procfs;
pub mod screen;
pub mod sys;
pub mod target;
pub mod tls;
pub mod verify;
