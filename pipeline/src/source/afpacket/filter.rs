//! Capture filters: tcpdump-syntax expressions compiled to classic BPF by libpcap's own compiler
//! (loaded at run time with `dlopen`, so `analyze` never needs libpcap), plus the two programs we
//! build by hand: "accept, cut to snaplen" and "drop everything" (used to stop a ring cleanly).

use super::sys::{SockFilter, BPF_RET_K};
use super::CaptureError;
use crate::decode::LinkType;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

/// A classic BPF program, ready for `SO_ATTACH_FILTER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfProgram {
    pub(crate) instructions: Vec<SockFilter>,
}

impl BpfProgram {
    /// Accepts every packet, cut to `snaplen` bytes (the kernel truncates to the return value).
    pub fn accept_all(snaplen: u32) -> BpfProgram {
        BpfProgram { instructions: vec![SockFilter { code: BPF_RET_K, jt: 0, jf: 0, k: snaplen }] }
    }

    /// Drops every packet: attached when stopping, so nothing new enters the ring while it drains.
    pub fn drop_all() -> BpfProgram {
        BpfProgram::accept_all(0)
    }

    /// Compiles a tcpdump-syntax expression for frames of `link` with libpcap, accepting `snaplen`
    /// bytes of each matching packet.
    pub fn compile(expression: &str, link: LinkType, snaplen: u32) -> Result<BpfProgram, CaptureError> {
        let dlt = match link {
            LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => 12, // DLT_RAW on Linux
            _ => 1,                                                   // DLT_EN10MB
        };
        let c_expression = CString::new(expression)
            .map_err(|_| CaptureError::Filter { expression: expression.to_owned(), message: "contains a NUL byte".into() })?;
        let pcap = Libpcap::load()?;
        pcap.compile(dlt, snaplen.min(i32::MAX as u32) as c_int, &c_expression)
            .map_err(|message| CaptureError::Filter { expression: expression.to_owned(), message })
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    /// Whether the program is empty (never true for a program built here).
    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }
}

/// `struct bpf_program` of libpcap.
#[repr(C)]
struct PcapBpfProgram {
    bf_len: c_uint,
    bf_insns: *mut SockFilter,
}

type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile = unsafe extern "C" fn(*mut c_void, *mut PcapBpfProgram, *const c_char, c_int, u32) -> c_int;
type GetErr = unsafe extern "C" fn(*mut c_void) -> *mut c_char;
type FreeCode = unsafe extern "C" fn(*mut PcapBpfProgram);
type Close = unsafe extern "C" fn(*mut c_void);

/// `PCAP_NETMASK_UNKNOWN`.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

struct Libpcap {
    library: libloading::Library,
}

impl Libpcap {
    fn load() -> Result<Libpcap, CaptureError> {
        let mut last = String::new();
        for name in ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"] {
            // SAFETY: loading libpcap runs its ELF constructors, which only initialise its own
            // state; it is a well-known system library with no load-time side effects on ours.
            match unsafe { libloading::Library::new(name) } {
                Ok(library) => return Ok(Libpcap { library }),
                Err(e) => last = e.to_string(),
            }
        }
        Err(CaptureError::Libpcap {
            message: format!("cannot load libpcap to compile the capture filter ({last}); install libpcap (Debian: libpcap0.8)"),
        })
    }

    fn compile(&self, dlt: c_int, snaplen: c_int, expression: &CStr) -> Result<BpfProgram, String> {
        // SAFETY: the symbol types match libpcap's documented prototypes (pcap/pcap.h), stable
        // since libpcap 0.8; the function pointers do not outlive `self.library`.
        let (open_dead, compile, geterr, freecode, close) = unsafe {
            let sym = |name: &[u8]| self.library.get::<*const c_void>(name).map(|s| *s).map_err(|e| e.to_string());
            let open_dead: OpenDead = std::mem::transmute(sym(b"pcap_open_dead\0")?);
            let compile: Compile = std::mem::transmute(sym(b"pcap_compile\0")?);
            let geterr: GetErr = std::mem::transmute(sym(b"pcap_geterr\0")?);
            let freecode: FreeCode = std::mem::transmute(sym(b"pcap_freecode\0")?);
            let close: Close = std::mem::transmute(sym(b"pcap_close\0")?);
            (open_dead, compile, geterr, freecode, close)
        };
        // SAFETY: pcap_open_dead allocates a handle for compiling only; we check for NULL and
        // close it on every path below.
        let handle = unsafe { open_dead(dlt, snaplen) };
        if handle.is_null() {
            return Err("pcap_open_dead failed".into());
        }
        let mut program = PcapBpfProgram { bf_len: 0, bf_insns: std::ptr::null_mut() };
        // SAFETY: `handle` is live, `program` is a valid out-parameter and `expression` a valid
        // NUL-terminated string for the duration of the call.
        let rc = unsafe { compile(handle, &mut program, expression.as_ptr(), 1, NETMASK_UNKNOWN) };
        let result = if rc != 0 {
            // SAFETY: pcap_geterr returns a NUL-terminated string owned by the live handle; we
            // copy it before closing the handle.
            let message = unsafe { CStr::from_ptr(geterr(handle)) }.to_string_lossy().into_owned();
            Err(message)
        } else {
            let instructions = if program.bf_insns.is_null() {
                Vec::new()
            } else {
                // SAFETY: on success libpcap filled `bf_insns` with `bf_len` instructions whose
                // layout is `struct bpf_insn`, identical to the kernel's `struct sock_filter`.
                unsafe { std::slice::from_raw_parts(program.bf_insns, program.bf_len as usize) }.to_vec()
            };
            // SAFETY: frees the instructions libpcap allocated for this program, exactly once.
            unsafe { freecode(&mut program) };
            if instructions.is_empty() || instructions.len() > u16::MAX as usize {
                Err(format!("libpcap produced {} instructions", instructions.len()))
            } else {
                Ok(BpfProgram { instructions })
            }
        };
        // SAFETY: closes the handle opened above, exactly once; nothing refers to it afterwards.
        unsafe { close(handle) };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_built_programs() {
        assert_eq!(BpfProgram::accept_all(96).instructions, vec![SockFilter { code: 6, jt: 0, jf: 0, k: 96 }]);
        assert_eq!(BpfProgram::drop_all().instructions[0].k, 0);
    }

    #[test]
    fn compiles_tcpdump_syntax_or_says_why_not() {
        match BpfProgram::compile("tcp port 80", LinkType::Ethernet, 256) {
            Ok(p) => {
                assert!(p.len() > 3);
                assert_eq!(p.instructions.last().map(|i| i.code), Some(BPF_RET_K));
                assert!(p.instructions.iter().any(|i| i.code == BPF_RET_K && i.k == 256), "snaplen is the accept value");
                let err = BpfProgram::compile("tcp port eighty", LinkType::Ethernet, 256).unwrap_err();
                assert!(err.to_string().contains("tcp port eighty"), "{err}");
            }
            Err(CaptureError::Libpcap { .. }) => eprintln!("SKIPPED compiles_tcpdump_syntax: libpcap not installed"),
            Err(e) => panic!("{e}"),
        }
    }
}
