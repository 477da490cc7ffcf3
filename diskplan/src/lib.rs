//! Disk planning (being written).
