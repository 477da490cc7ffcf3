//! Initramfs writer (being written).
