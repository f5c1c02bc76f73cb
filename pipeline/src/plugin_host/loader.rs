//! Opening a plugin file: permission checks, `dlopen`, the entry symbol and the descriptor checks
//! (magic, ABI major/minor, struct size). Libraries are never unloaded.

use super::PluginError;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use tcpscope_plugin_api::abi::*;

/// What a plugin file declares about itself, read from its descriptor.
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// The file it was loaded from (canonical path).
    pub path: PathBuf,
    /// Name: the `detector` column and the key of its configuration.
    pub name: String,
    /// Version.
    pub version: String,
    /// One line saying what it detects.
    pub description: String,
    /// ABI major the plugin was built for.
    pub abi_major: u32,
    /// ABI minor the plugin was built for.
    pub abi_minor: u32,
    /// `TCPSCOPE_CAP_*` bits.
    pub capabilities: u32,
    /// Event kinds it declares, with their documentation.
    pub event_kinds: Vec<(String, String)>,
    /// Detail keys it declares, with their documentation.
    pub detail_keys: Vec<(String, String)>,
}

impl PluginInfo {
    /// Capability names, e.g. `["segments", "flow_end"]`.
    pub fn capability_names(&self) -> Vec<&'static str> {
        capability_names(self.capabilities)
    }
}

/// Names of the `TCPSCOPE_CAP_*` bits set in `caps`.
pub fn capability_names(caps: u32) -> Vec<&'static str> {
    [
        (TCPSCOPE_CAP_SEGMENTS, "segments"),
        (TCPSCOPE_CAP_FLOW_END, "flow_end"),
        (TCPSCOPE_CAP_TICK, "tick"),
        (TCPSCOPE_CAP_FLUSH, "flush"),
        (TCPSCOPE_CAP_SHARED, "shared"),
    ]
    .iter()
    .filter(|(bit, _)| caps & bit != 0)
    .map(|(_, n)| *n)
    .collect()
}

/// A descriptor that passed every check, with its library leaked (never unloaded).
pub(crate) struct OpenedPlugin {
    pub info: PluginInfo,
    pub descriptor: TcpscopePluginDescriptor,
}

/// Refuses files that are not regular, or that group or others may write (unless allowed).
pub fn check_permissions(path: &Path, allow_unsafe_permissions: bool) -> Result<PathBuf, PluginError> {
    let refuse = |reason: String| PluginError::Permissions { path: path.to_owned(), reason };
    let meta = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(refuse("expected a regular file, found a directory or special file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 && !allow_unsafe_permissions {
            return Err(refuse(format!(
                "expected a file not writable by group or others, found mode {mode:04o} \
                 (run `chmod go-w` on it, or pass --allow-unsafe-plugin-permissions)"
            )));
        }
    }
    let _ = allow_unsafe_permissions;
    std::fs::canonicalize(path).map_err(|e| refuse(format!("cannot resolve its path: {e}")))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Reads a NUL-terminated string the plugin owns (static for the library's lifetime).
///
/// # Safety
/// `ptr` must be null or point at a NUL-terminated string that stays alive.
unsafe fn c_string(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a live NUL-terminated string.
    Some(unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
}

/// Reads a table of `n` name/doc pairs.
///
/// # Safety
/// `ptr` must be null or point at `n` valid `TcpscopeNameDoc` entries with live strings.
unsafe fn name_docs(ptr: *const TcpscopeNameDoc, n: usize) -> Vec<(String, String)> {
    if ptr.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `n` entries; capped to a sane bound against garbage.
    let entries = unsafe { std::slice::from_raw_parts(ptr, n.min(4096)) };
    entries
        .iter()
        // SAFETY: each entry holds static strings, per the caller's guarantee.
        .map(|e| unsafe { (c_string(e.name).unwrap_or_default(), c_string(e.doc).unwrap_or_default()) })
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Opens `path` as a plugin and checks its descriptor. The library stays loaded forever.
pub(crate) fn open(path: &Path, allow_unsafe_permissions: bool) -> Result<OpenedPlugin, PluginError> {
    let canonical = check_permissions(path, allow_unsafe_permissions)?;
    let shown = path.to_owned();
    // SAFETY: loading a library runs its initialisers. The operator named this file as a
    // plugin; it is a regular file not writable by group or others (checked above), which is
    // the trust boundary tcpscope documents. Nothing else is run before the checks below.
    let library = unsafe { libloading::Library::new(&canonical) }
        .map_err(|e| PluginError::Open { path: shown.clone(), found: error_chain(&e) })?;
    let entry_name = format!("{TCPSCOPE_PLUGIN_ENTRY}\0");
    // SAFETY: the symbol, if present, is the plugin's entry point with the documented type
    // `TcpscopeEntryFn`; the type is the ABI contract for this symbol name.
    let entry = match unsafe { library.get::<TcpscopeEntryFn>(entry_name.as_bytes()) } {
        Ok(symbol) => *symbol,
        Err(_) => {
            // Say what the file does export: another major's entry point, or nothing of ours.
            for major in (0..=9u32).filter(|m| *m != TCPSCOPE_ABI_MAJOR) {
                let other = format!("tcpscope_plugin_v{major}\0");
                // SAFETY: only probing whether the symbol exists; it is never called.
                if unsafe { library.get::<*const u8>(other.as_bytes()) }.is_ok() {
                    return Err(PluginError::AbiMajor { path: shown, expected: TCPSCOPE_ABI_MAJOR, found: major });
                }
            }
            return Err(PluginError::MissingEntry {
                path: shown,
                expected: TCPSCOPE_PLUGIN_ENTRY,
                found: "no tcpscope_plugin_v* symbol".into(),
            });
        }
    };
    // Never unload: code, statics and thread-local destructors of the plugin must outlive
    // every thread that touched them (see research/plugins-parquet.md §1.3).
    std::mem::forget(library);
    // SAFETY: the entry point takes no arguments and returns a pointer to a static descriptor.
    let ptr = unsafe { entry() };
    if ptr.is_null() {
        return Err(PluginError::BadDescriptor { path: shown, reason: "the entry point returned a null descriptor".into() });
    }
    // SAFETY: every descriptor of every ABI version opens with magic (u64), major, minor and
    // struct_size (u32 each): reading these 20 bytes is valid for any version. Unaligned reads
    // guard against a sloppy C plugin.
    let (magic, major, minor, struct_size) = unsafe {
        (
            std::ptr::read_unaligned(ptr.cast::<u64>()),
            std::ptr::read_unaligned(ptr.cast::<u8>().add(8).cast::<u32>()),
            std::ptr::read_unaligned(ptr.cast::<u8>().add(12).cast::<u32>()),
            std::ptr::read_unaligned(ptr.cast::<u8>().add(16).cast::<u32>()),
        )
    };
    if magic != TCPSCOPE_PLUGIN_MAGIC {
        return Err(PluginError::BadMagic { path: shown, expected: TCPSCOPE_PLUGIN_MAGIC, found: magic });
    }
    if major != TCPSCOPE_ABI_MAJOR {
        return Err(PluginError::AbiMajor { path: shown, expected: TCPSCOPE_ABI_MAJOR, found: major });
    }
    if minor > TCPSCOPE_ABI_MINOR {
        return Err(PluginError::AbiMinor { path: shown, expected: TCPSCOPE_ABI_MINOR, found: minor });
    }
    let needed = std::mem::size_of::<TcpscopePluginDescriptor>() as u32;
    if struct_size < needed {
        return Err(PluginError::StructTooSmall { path: shown, expected: needed, found: struct_size });
    }
    // SAFETY: the plugin declares a descriptor of at least the size we read, built for our
    // major; it is a static of the (never unloaded) library.
    let descriptor = unsafe { std::ptr::read_unaligned(ptr) };
    // SAFETY: descriptor strings and tables are statics of the library.
    let (name, version, description, event_kinds, detail_keys) = unsafe {
        (
            c_string(descriptor.name),
            c_string(descriptor.version).unwrap_or_default(),
            c_string(descriptor.description).unwrap_or_default(),
            name_docs(descriptor.event_kinds, descriptor.n_event_kinds),
            name_docs(descriptor.detail_keys, descriptor.n_detail_keys),
        )
    };
    let name = match name {
        Some(n) if valid_name(&n) => n,
        other => {
            return Err(PluginError::BadDescriptor {
                path: shown,
                reason: format!(
                    "expected a name of 1-64 letters, digits, '-', '_' or '.', found {}",
                    other.map(|n| format!("{n:?}")).unwrap_or_else(|| "a null name".into())
                ),
            })
        }
    };
    Ok(OpenedPlugin {
        info: PluginInfo {
            path: canonical,
            name,
            version,
            description,
            abi_major: major,
            abi_minor: minor,
            capabilities: descriptor.capabilities,
            event_kinds,
            detail_keys,
        },
        descriptor,
    })
}
