//! A manifest's command line (argv and environment) for one role in one scenario.

use std::path::Path;

use crate::Error;
use crate::model::{ImplManifest, Role, Scenario};
use crate::plan::Placeholders;

/// Builds a peer's argv and env from its manifest; `other` is the cell's other peer (the
/// dialer for a listener: it decides the listener's token profile,
/// [`crate::plan::listener_options`]).
pub(super) fn command(
    manifest: &ImplManifest,
    role: Role,
    other: &ImplManifest,
    scenario: &Scenario,
    ph: &Placeholders,
    peer_binary: &Path,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let listener_options = match role {
        Role::Listen => crate::plan::listener_options(scenario, manifest, other),
        Role::Dial => Vec::new(),
    };
    command_line(
        manifest,
        role,
        &OptionSet {
            listener: &listener_options,
            listener_if_mapped: &scenario.listener_options_if_mapped,
            dialer: &scenario.dialer_options,
        },
        ph,
        peer_binary,
    )
}

/// The manifest options a run asks for (keys of `[listen.options]` and `[dial.options]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OptionSet<'a> {
    /// Listener options the manifest must map (an unmapped one is an error).
    pub listener: &'a [String],
    /// Listener options passed when the manifest maps them, left out otherwise.
    pub listener_if_mapped: &'a [String],
    /// Dialer options, passed when the manifest maps them.
    pub dialer: &'a [String],
}

/// A peer's argv and environment (`NAME=value`) for `role` from its manifest, the way the
/// suite starts it (`docs/implementers.md`): placeholders filled, the asked-for options
/// appended, `ONEWAY_ROLE`, `ONEWAY_TOKEN` (dialer) and `ONEWAY_TIMEOUT_SECS` set, and
/// `argv[0] = "oneway"` of a `base` or `browser` manifest mapped to `peer_binary`.
pub fn command_line(
    manifest: &ImplManifest,
    role: Role,
    options: &OptionSet<'_>,
    ph: &Placeholders,
    peer_binary: &Path,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let cmd = match role {
        Role::Listen => manifest.listen.as_ref(),
        Role::Dial => manifest.dial.as_ref(),
    }
    .ok_or_else(|| Error::Invalid {
        file: manifest.id.clone(),
        message: format!("no command for {role:?}"),
    })?;
    let mut argv: Vec<String> = cmd.argv.iter().map(|a| ph.fill(a)).collect();
    if role == Role::Listen {
        for o in options.listener {
            let extra = cmd.options.get(o).ok_or_else(|| Error::Invalid {
                file: manifest.id.clone(),
                message: format!("no listener option `{o}`"),
            })?;
            argv.extend(extra.iter().map(|a| ph.fill(a)));
        }
        for o in options.listener_if_mapped {
            if let Some(extra) = cmd.options.get(o) {
                argv.extend(extra.iter().map(|a| ph.fill(a)));
            }
        }
    } else {
        // A dialer option the manifest does not map is left out: the scenario's `[[unless]]`
        // on the capability expects the outcome without it.
        for o in options.dialer {
            if let Some(extra) = cmd.options.get(o) {
                argv.extend(extra.iter().map(|a| ph.fill(a)));
            }
        }
    }
    if crate::image::Variant::from_image(&manifest.image).is_some()
        && argv.first().is_some_and(|a| a == "oneway")
    {
        argv[0] = peer_binary.display().to_string();
    }
    let mut env: Vec<String> = cmd
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", ph.fill(v)))
        .collect();
    env.push(format!(
        "ONEWAY_ROLE={}",
        if role == Role::Listen {
            "listen"
        } else {
            "dial"
        }
    ));
    if role == Role::Dial {
        env.push(format!("ONEWAY_TOKEN={}", ph.token));
    }
    env.push(format!("ONEWAY_TIMEOUT_SECS={}", ph.timeout_secs));
    Ok((argv, env))
}
