//! The kernel consoles: the screen always, the first serial port too when
//! asked (a lab logs it; VM tests read it). The last `console=` becomes
//! `/dev/console`, so the serial port, when present, comes last.

/// The PC's screen.
pub const SCREEN: &str = "tty0";
/// The first serial port at the speed GRUB and ISOLINUX also use.
pub const SERIAL: &str = "ttyS0,115200";
/// The serial speed alone, for boot loaders' `serial` commands.
pub const SERIAL_SPEED: u32 = 115_200;

/// The `console=` values, in order.
pub fn consoles(serial: bool) -> Vec<&'static str> {
    if serial {
        vec![SCREEN, SERIAL]
    } else {
        vec![SCREEN]
    }
}

/// `console=tty0 [console=ttyS0,115200]` as kernel parameters.
pub fn cmdline(serial: bool) -> kernel_cmdline::Cmdline {
    let words: Vec<String> = consoles(serial).iter().map(|v| format!("console={v}")).collect();
    kernel_cmdline::Cmdline::parse(&words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_comes_last_and_reads_back() {
        let c = cmdline(true);
        assert_eq!(c.to_string(), "console=tty0 console=ttyS0,115200");
        let back = kernel_cmdline::Cmdline::parse(&c.to_string());
        let values: Vec<_> = back.get_all("console").filter_map(|p| p.value.clone()).collect();
        assert_eq!(values, consoles(true));
        assert_eq!(cmdline(false).to_string(), "console=tty0");
        assert!(SERIAL.ends_with(&SERIAL_SPEED.to_string()));
    }
}
