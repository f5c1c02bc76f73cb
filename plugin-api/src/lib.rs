//! The versioned C ABI between tcpscope and its detector plugins, and a safe SDK for plugin authors.
//!
//! * [`abi`]: `#[repr(C)]` types and `extern "C"` function pointers only; the C header
//!   `include/tcpscope_plugin.h` is generated from it.
//! * [`sdk`]: the [`Detector`] trait, call-scoped views, the [`Emitter`], and helpers for
//!   aggregation that does not depend on the number of workers.
//! * [`export_plugin!`]: one line that exports a [`Detector`] as a plugin.
//!
//! ```ignore
//! struct Quiet;
//! impl tcpscope_plugin_api::Detector for Quiet {
//!     type Shared = ();
//!     const CAPABILITIES: u32 = tcpscope_plugin_api::abi::TCPSCOPE_CAP_SEGMENTS;
//!     fn init_shared(_config: &str, _workers: u32) -> Result<(), String> { Ok(()) }
//!     fn create(_: &std::sync::Arc<()>, _config: &str, _worker: u32) -> Result<Self, String> { Ok(Quiet) }
//! }
//! tcpscope_plugin_api::export_plugin!(Quiet, name: "quiet", description: "does nothing",
//!     kinds: [], details: []);
//! ```
#![deny(missing_docs)]

pub mod abi;
pub mod sdk;

pub use sdk::{Detector, Emitter, Event, Severity};

/// Exports a [`Detector`] as a tcpscope plugin: a static descriptor whose hooks are the SDK's
/// `catch_unwind` shims, and the entry symbol `tcpscope_plugin_v1` that returns it. The plugin
/// version is the crate's `CARGO_PKG_VERSION`.
///
/// `kinds` and `details` declare, with one line of documentation each, the event kinds and the
/// detail keys the plugin emits (`tcpscope plugin inspect` prints them).
#[macro_export]
macro_rules! export_plugin {
    ($detector:ty, name: $name:literal, description: $description:literal,
     kinds: [$(($kind:literal, $kind_doc:literal)),* $(,)?],
     details: [$(($key:literal, $key_doc:literal)),* $(,)?] $(,)?) => {
        const _: () = {
            use $crate::abi::*;
            const N_KINDS: usize = { let a: &[&str] = &[$($kind),*]; a.len() };
            const N_KEYS: usize = { let a: &[&str] = &[$($key),*]; a.len() };
            static KINDS: [TcpscopeNameDoc; N_KINDS] = [$(TcpscopeNameDoc {
                name: concat!($kind, "\0").as_ptr().cast(),
                doc: concat!($kind_doc, "\0").as_ptr().cast(),
            }),*];
            static KEYS: [TcpscopeNameDoc; N_KEYS] = [$(TcpscopeNameDoc {
                name: concat!($key, "\0").as_ptr().cast(),
                doc: concat!($key_doc, "\0").as_ptr().cast(),
            }),*];
            static DESCRIPTOR: TcpscopePluginDescriptor = TcpscopePluginDescriptor {
                magic: TCPSCOPE_PLUGIN_MAGIC,
                abi_major: TCPSCOPE_ABI_MAJOR,
                abi_minor: TCPSCOPE_ABI_MINOR,
                struct_size: ::core::mem::size_of::<TcpscopePluginDescriptor>() as u32,
                capabilities: <$detector as $crate::Detector>::CAPABILITIES | TCPSCOPE_CAP_SHARED,
                name: concat!($name, "\0").as_ptr().cast(),
                version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
                description: concat!($description, "\0").as_ptr().cast(),
                event_kinds: KINDS.as_ptr(),
                n_event_kinds: N_KINDS,
                detail_keys: KEYS.as_ptr(),
                n_detail_keys: N_KEYS,
                init_shared: Some($crate::sdk::shim::init_shared::<$detector>),
                flush_shared: Some($crate::sdk::shim::flush_shared::<$detector>),
                destroy_shared: Some($crate::sdk::shim::destroy_shared::<$detector>),
                create: Some($crate::sdk::shim::create::<$detector>),
                on_segment: Some($crate::sdk::shim::on_segment::<$detector>),
                on_flow_end: Some($crate::sdk::shim::on_flow_end::<$detector>),
                on_tick: Some($crate::sdk::shim::on_tick::<$detector>),
                flush: Some($crate::sdk::shim::flush::<$detector>),
                destroy: Some($crate::sdk::shim::destroy::<$detector>),
            };
            /// The plugin's entry point (ABI major 1).
            #[unsafe(no_mangle)]
            pub extern "C" fn tcpscope_plugin_v1() -> *const TcpscopePluginDescriptor {
                &DESCRIPTOR
            }
        };
    };
}
