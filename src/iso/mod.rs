//! ISO 9660 writer (being written).
