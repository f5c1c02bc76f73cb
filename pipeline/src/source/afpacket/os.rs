//! The few process-level calls live capture needs: SIGINT/SIGTERM to a flag, dropping root after
//! the sockets are open (as `tcpdump -Z` does), and the link type of an interface.

use super::CaptureError;
use crate::decode::LinkType;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`stop_requested`]. The handler resets itself, so a second signal
/// ends the process the default way (for a stuck shutdown).
pub fn install_stop_signals() -> Result<(), CaptureError> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; we set the handler, an empty mask and flags, and the
        // handler only performs an atomic store, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(CaptureError::Process { what: "installing the SIGINT/SIGTERM handler", source: std::io::Error::last_os_error() });
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`install_stop_signals`].
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Switches the process to `user` (its uid, primary gid and supplementary groups), for good.
pub fn drop_privileges(user: &str) -> Result<(), CaptureError> {
    let bad = |message: String| CaptureError::User { user: user.to_owned(), message };
    let name = std::ffi::CString::new(user).map_err(|_| bad("contains a NUL byte".into()))?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-parameter.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buffer` outlives every use of `entry`'s strings.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return Err(bad("no such user".into()));
    }
    let (uid, gid) = (entry.pw_uid, entry.pw_gid);
    // SAFETY: plain credential calls on this process with values from the password database;
    // glibc applies them to every thread. Each result is checked.
    unsafe {
        if libc::initgroups(name.as_ptr(), gid) != 0 {
            return Err(bad(format!("setting supplementary groups: {}", std::io::Error::last_os_error())));
        }
        if libc::setgid(gid) != 0 {
            return Err(bad(format!("setgid({gid}): {}", std::io::Error::last_os_error())));
        }
        if libc::setuid(uid) != 0 {
            return Err(bad(format!("setuid({uid}): {}", std::io::Error::last_os_error())));
        }
        // Make sure it cannot be undone.
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(bad("root could be regained after setuid".into()));
        }
    }
    Ok(())
}

/// The link type of frames read from `interface` (from `/sys/class/net/IFACE/type`).
pub fn interface_link_type(interface: &str) -> Result<LinkType, CaptureError> {
    let path = format!("/sys/class/net/{interface}/type");
    let text = std::fs::read_to_string(&path).map_err(|_| CaptureError::NoSuchInterface { interface: interface.to_owned() })?;
    match text.trim().parse::<u32>() {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK (the loopback has a zeroed Ethernet header).
        Ok(1) | Ok(772) => Ok(LinkType::Ethernet),
        // ARPHRD_NONE (tun), ARPHRD_RAWIP: frames start at the IP header.
        Ok(65534) | Ok(519) => Ok(LinkType::RawIp),
        other => Err(CaptureError::UnsupportedLink { interface: interface.to_owned(), arphrd: other.unwrap_or(0) }),
    }
}

/// Whether `interface` is a loopback (ARPHRD_LOOPBACK): it shows every packet twice, once sent
/// and once received.
pub fn is_loopback(interface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/type")).is_ok_and(|t| t.trim() == "772")
}
