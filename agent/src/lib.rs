//! The lazare install agent. `main.rs` only dispatches; everything lives here
//! so tests can call it.
