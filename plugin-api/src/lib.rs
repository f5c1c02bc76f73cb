//! The versioned C ABI between tcpscope and its detector plugins, and a safe SDK for plugin authors.
#![deny(missing_docs)]
