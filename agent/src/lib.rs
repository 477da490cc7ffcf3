//! The lazare install agent. `main.rs` only dispatches; everything lives here
//! so tests can call it.

pub mod config;
pub mod entropy;
pub mod flow;
pub mod init;
pub mod install;
pub mod plancli;
pub mod screen;
pub mod settings;
pub mod sys;
