//! The lazare install agent. `main.rs` only dispatches; everything lives here
//! so tests can call it.

pub mod config;
pub mod init;
pub mod plancli;
