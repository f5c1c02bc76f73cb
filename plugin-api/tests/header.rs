//! Generates `include/tcpscope_plugin.h` from `src/abi.rs` and checks the committed copy is
//! current. `TCPSCOPE_BLESS=1 cargo test -p tcpscope-plugin-api --test header` rewrites it.

use std::mem::{align_of, size_of};
use std::path::Path;
use tcpscope_plugin_api::abi::*;

fn c_scalar(ty: &str) -> String {
    match ty {
        "u8" => "uint8_t".into(),
        "u16" => "uint16_t".into(),
        "u32" => "uint32_t".into(),
        "u64" => "uint64_t".into(),
        "i32" => "int32_t".into(),
        "i64" => "int64_t".into(),
        "usize" => "size_t".into(),
        "c_char" => "char".into(),
        "c_void" => "void".into(),
        other if other.starts_with("Tcpscope") => other.into(),
        other => panic!("the header generator does not know the type `{other}`"),
    }
}

/// Splits `a: T, b: U` at top-level commas.
fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for ch in args.chars() {
        match ch {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_owned());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// A C declaration of `name` with Rust type `ty`.
fn c_decl(ty: &str, name: &str) -> String {
    let ty = ty.trim();
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        return c_decl(inner, name);
    }
    if let Some(rest) = ty.strip_prefix("unsafe extern \"C\" fn(") {
        let close = rest.rfind(')').expect("closing parenthesis of a fn type");
        let args = &rest[..close];
        let ret = rest[close + 1..].trim().strip_prefix("->").map(str::trim);
        let c_args: Vec<String> = split_args(args)
            .iter()
            .map(|a| {
                let (n, t) = a.split_once(':').expect("named fn argument");
                c_decl(t, n.trim())
            })
            .collect();
        let c_args = if c_args.is_empty() { "void".to_owned() } else { c_args.join(", ") };
        let ret = ret.map(|r| c_decl(r, "")).unwrap_or_else(|| "void".into());
        return format!("{} (*{name})({c_args})", ret.trim_end());
    }
    if let Some(rest) = ty.strip_prefix("*const ") {
        return format!("const {}", c_decl(rest, &format!("*{name}")));
    }
    if let Some(rest) = ty.strip_prefix("*mut ") {
        return c_decl(rest, &format!("*{name}"));
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let (elem, n) = inner.split_once(';').expect("array type");
        return format!("{} {name}[{}]", c_scalar(elem.trim()), n.trim());
    }
    let scalar = c_scalar(ty);
    if name.is_empty() {
        scalar
    } else {
        format!("{scalar} {name}")
    }
}

fn comment(docs: &[String], indent: &str) -> String {
    if docs.is_empty() {
        return String::new();
    }
    if docs.len() == 1 {
        return format!("{indent}/** {} */\n", docs[0]);
    }
    let mut s = format!("{indent}/**\n");
    for d in docs {
        s.push_str(&format!("{indent} * {d}\n"));
    }
    s.push_str(&format!("{indent} */\n"));
    s
}

fn generate(abi: &str) -> String {
    let mut body = String::new();
    let mut docs: Vec<String> = Vec::new();
    let mut entry = None;
    let mut lines = abi.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if let Some(d) = line.strip_prefix("///") {
            docs.push(d.trim().replace("*/", "* /"));
            continue;
        }
        if line.is_empty() || line.starts_with("//") || line.starts_with("use ") || line.starts_with("#[") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub const ") {
            let (name, rest) = rest.split_once(':').expect("const name");
            let (ty, value) = rest.split_once('=').expect("const value");
            let (ty, value) = (ty.trim(), value.trim().trim_end_matches(';').to_owned());
            let value = if ty == "&str" { value } else { value.replace('_', "") };
            body.push_str(&comment(&docs, ""));
            let value = match ty {
                "&str" => {
                    entry = Some(value.trim_matches('"').to_owned());
                    value
                }
                "u64" => format!("UINT64_C({value})"),
                "u32" | "u16" | "u8" => format!("{value}u"),
                _ => value,
            };
            body.push_str(&format!("#define {name} {value}\n\n"));
        } else if let Some(rest) = line.strip_prefix("pub type ") {
            let (name, ty) = rest.split_once('=').expect("type alias");
            let ty = ty.trim().trim_end_matches(';');
            body.push_str(&comment(&docs, ""));
            body.push_str(&format!("typedef {};\n\n", c_decl(ty, name.trim())));
        } else if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches('{').trim();
            body.push_str(&comment(&docs, ""));
            body.push_str(&format!("typedef struct {name} {{\n"));
            docs.clear();
            for field in lines.by_ref() {
                let field = field.trim();
                if field == "}" {
                    break;
                }
                if let Some(d) = field.strip_prefix("///") {
                    docs.push(d.trim().replace("*/", "* /"));
                    continue;
                }
                let f = field.strip_prefix("pub ").expect("public field").trim_end_matches(',');
                let (fname, fty) = f.split_once(':').expect("field type");
                body.push_str(&comment(&docs, "    "));
                body.push_str(&format!("    {};\n", c_decl(fty, fname.trim())));
                docs.clear();
            }
            body.push_str(&format!("}} {name};\n\n"));
        } else {
            panic!("the header generator does not understand this line of abi.rs: {line}");
        }
        docs.clear();
    }
    let entry = entry.expect("TCPSCOPE_PLUGIN_ENTRY");
    let layouts: [(&str, usize, usize); 8] = [
        ("TcpscopeStr", size_of::<TcpscopeStr>(), align_of::<TcpscopeStr>()),
        ("TcpscopeKeyValue", size_of::<TcpscopeKeyValue>(), align_of::<TcpscopeKeyValue>()),
        ("TcpscopeNameDoc", size_of::<TcpscopeNameDoc>(), align_of::<TcpscopeNameDoc>()),
        ("TcpscopeSegment", size_of::<TcpscopeSegment>(), align_of::<TcpscopeSegment>()),
        ("TcpscopeFlow", size_of::<TcpscopeFlow>(), align_of::<TcpscopeFlow>()),
        ("TcpscopeEvent", size_of::<TcpscopeEvent>(), align_of::<TcpscopeEvent>()),
        ("TcpscopeEmitter", size_of::<TcpscopeEmitter>(), align_of::<TcpscopeEmitter>()),
        ("TcpscopePluginDescriptor", size_of::<TcpscopePluginDescriptor>(), align_of::<TcpscopePluginDescriptor>()),
    ];
    let mut asserts = String::new();
    for (name, size, align) in layouts {
        asserts.push_str(&format!(
            "_Static_assert(sizeof({name}) == {size} && _Alignof({name}) == {align}, \"{name} layout differs from plugin-api/src/abi.rs\");\n"
        ));
    }
    format!(
        "/*\n * tcpscope detector plugin ABI, major {TCPSCOPE_ABI_MAJOR} minor {TCPSCOPE_ABI_MINOR}.\n * Generated from plugin-api/src/abi.rs by plugin-api/tests/header.rs: do not edit.\n */\n\
         #ifndef TCPSCOPE_PLUGIN_H\n#define TCPSCOPE_PLUGIN_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n\
         #ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n{body}\
         /** The entry point every plugin exports: returns its static descriptor. */\n\
         const TcpscopePluginDescriptor *{entry}(void);\n\n\
         /** A TcpscopeStr of a string literal. */\n\
         #define TCPSCOPE_STR(literal) ((TcpscopeStr){{ (const uint8_t *)(literal), sizeof(literal) - 1 }})\n\n\
         #if !defined(__cplusplus) && UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu\n{asserts}#endif\n\n\
         #ifdef __cplusplus\n}}\n#endif\n\n#endif /* TCPSCOPE_PLUGIN_H */\n"
    )
}

#[test]
fn header_is_generated_from_abi_rs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let abi = std::fs::read_to_string(root.join("src/abi.rs")).expect("reading src/abi.rs");
    let header = generate(&abi);
    let path = root.join("include/tcpscope_plugin.h");
    if std::env::var_os("TCPSCOPE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &header).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == header,
        "{} is out of date with src/abi.rs: run TCPSCOPE_BLESS=1 cargo test -p tcpscope-plugin-api --test header",
        path.display()
    );
}

#[test]
fn entry_symbol_carries_the_major_version() {
    assert_eq!(TCPSCOPE_PLUGIN_ENTRY, format!("tcpscope_plugin_v{TCPSCOPE_ABI_MAJOR}"));
}

#[test]
fn analysis_bits_are_powers_of_two_in_order() {
    let bits = [
        TCPSCOPE_ANALYSIS_RETRANSMISSION,
        TCPSCOPE_ANALYSIS_FAST_RETRANSMISSION,
        TCPSCOPE_ANALYSIS_SPURIOUS_RETRANSMISSION,
        TCPSCOPE_ANALYSIS_OUT_OF_ORDER,
        TCPSCOPE_ANALYSIS_PREVIOUS_SEGMENT_NOT_CAPTURED,
        TCPSCOPE_ANALYSIS_ACKED_UNSEEN_SEGMENT,
        TCPSCOPE_ANALYSIS_DUPLICATE_ACK,
        TCPSCOPE_ANALYSIS_ZERO_WINDOW,
        TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE,
        TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE_ACK,
        TCPSCOPE_ANALYSIS_WINDOW_FULL,
        TCPSCOPE_ANALYSIS_WINDOW_UPDATE,
        TCPSCOPE_ANALYSIS_KEEP_ALIVE,
        TCPSCOPE_ANALYSIS_KEEP_ALIVE_ACK,
        TCPSCOPE_ANALYSIS_PORT_REUSE,
    ];
    for (i, b) in bits.iter().enumerate() {
        assert_eq!(*b, 1 << i);
    }
}
