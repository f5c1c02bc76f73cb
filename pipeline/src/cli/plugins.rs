//! Plugin flags shared by `analyze` and `capture` (`--plugin`, `--plugin-config`,
//! `--allow-unsafe-plugin-permissions`) and the `tcpscope plugin inspect` subcommand.

use crate::plugin_host::{PluginOptions, PluginSet};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Detector plugin flags. Flatten into a subcommand's arguments and call [`PluginArgs::load`].
#[derive(Debug, Clone, Default, Args)]
pub struct PluginArgs {
    /// Load a detector plugin (a shared library built with tcpscope-plugin-api); repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
    /// Configure a plugin: NAME=JSON (e.g. `syn-flood={"min_incomplete":50}`) or NAME=@FILE
    /// (a file holding the JSON value); repeatable.
    #[arg(long = "plugin-config", value_name = "NAME=JSON")]
    pub plugin_configs: Vec<String>,
    /// Load plugin files even when group or others may write them.
    #[arg(long)]
    pub allow_unsafe_plugin_permissions: bool,
}

impl PluginArgs {
    /// The loader options these flags describe (reads `@FILE` configurations).
    pub fn options(&self) -> anyhow::Result<PluginOptions> {
        let mut configs = Vec::new();
        for item in &self.plugin_configs {
            let (name, value) = item
                .split_once('=')
                .with_context(|| format!("--plugin-config {item:?}: expected NAME=JSON or NAME=@FILE"))?;
            let value = match value.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .with_context(|| format!("--plugin-config {name}: reading {file}"))?,
                None => value.to_owned(),
            };
            configs.push((name.trim().to_owned(), value));
        }
        Ok(PluginOptions {
            paths: self.plugins.clone(),
            configs,
            allow_unsafe_permissions: self.allow_unsafe_plugin_permissions,
        })
    }

    /// Loads the plugins for a run of `workers` workers; `None` when no `--plugin` was given.
    /// Any refusal is an error naming the file, what was expected and what was found.
    pub fn load(&self, workers: usize) -> anyhow::Result<Option<Arc<PluginSet>>> {
        let options = self.options()?;
        if options.paths.is_empty() {
            anyhow::ensure!(options.configs.is_empty(), "--plugin-config given without any --plugin");
            return Ok(None);
        }
        Ok(Some(PluginSet::load(&options, workers)?))
    }
}

/// `tcpscope plugin ...`
#[derive(Debug, Args)]
pub struct PluginCommandArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, ABI, capabilities, event kinds and detail keys.
    Inspect {
        /// The plugin file.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Inspect the file even when group or others may write it.
        #[arg(long)]
        allow_unsafe_plugin_permissions: bool,
    },
}

/// Runs `tcpscope plugin ...`.
pub fn run_plugin_command(args: PluginCommandArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PluginCommand::Inspect { path, allow_unsafe_plugin_permissions } => {
            let info = crate::plugin_host::inspect(&path, allow_unsafe_plugin_permissions)?;
            println!("name:         {}", info.name);
            println!("version:      {}", info.version);
            println!("description:  {}", info.description);
            println!("path:         {}", info.path.display());
            println!(
                "abi:          {}.{} (host {}.{})",
                info.abi_major,
                info.abi_minor,
                tcpscope_plugin_api::abi::TCPSCOPE_ABI_MAJOR,
                tcpscope_plugin_api::abi::TCPSCOPE_ABI_MINOR
            );
            println!("capabilities: {}", info.capability_names().join(", "));
            println!("event kinds:");
            for (name, doc) in &info.event_kinds {
                println!("  {name:<24} {doc}");
            }
            println!("detail keys:");
            for (name, doc) in &info.detail_keys {
                println!("  {name:<24} {doc}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
