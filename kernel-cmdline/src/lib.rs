//! Parse and format the Linux kernel command line (to be written).
