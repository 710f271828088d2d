//! A manifest's command line (argv and environment) for one role in one scenario.

use std::path::Path;

use crate::Error;
use crate::model::{ImplManifest, MEDIA, Role, Scenario};
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
    let mut listener_options = match role {
        Role::Listen => crate::plan::listener_options(scenario, manifest, other),
        Role::Dial => Vec::new(),
    };
    let mut dialer_options = scenario.dialer_options.clone();
    let mut ph = ph.clone();
    // Media: each side's `media` option with its own tone (`crate::media`).
    let media = match role {
        Role::Listen => crate::plan::media_for(scenario, other, manifest),
        Role::Dial => crate::plan::media_for(scenario, manifest, other),
    };
    if media {
        match role {
            Role::Listen => {
                listener_options.push(MEDIA.to_owned());
                ph.tone_hz = crate::media::LISTENER_TONE_HZ;
            }
            Role::Dial => {
                dialer_options.push(MEDIA.to_owned());
                ph.tone_hz = crate::media::DIALER_TONE_HZ;
            }
        }
    }
    command_line(
        manifest,
        role,
        &OptionSet {
            listener: &listener_options,
            listener_if_mapped: &scenario.listener_options_if_mapped,
            dialer: &dialer_options,
        },
        &ph,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, media: bool) -> ImplManifest {
        let caps = if media {
            "capabilities = [\"media\"]\n"
        } else {
            ""
        };
        ImplManifest::parse(
            &format!(
                "id = \"{id}\"\nroles = [\"listen\", \"dial\"]\n{caps}[listen]\nargv = [\"l\"]\noptions = {{ media = [\"--send-audio\", \"tone:{{tone_hz}}\", \"--send-video\"] }}\n[dial]\nargv = [\"d\", \"{{token}}\"]\noptions = {{ media = [\"--send-audio\", \"tone:{{tone_hz}}\", \"--send-video\"] }}\n"
            ),
            id,
        )
        .expect("manifest")
    }

    #[test]
    fn each_side_gets_its_media_option_with_its_own_tone() {
        let s = Scenario::parse(
            "description = \"x\"\nmedia = true\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "s",
        )
        .expect("scenario");
        let ph = Placeholders {
            token: "ow1.t".into(),
            ..Placeholders::default()
        };
        let (m, plain) = (manifest("m", true), manifest("p", false));
        let bin = Path::new("/x/oneway");
        let (listen, _) = command(&m, Role::Listen, &m, &s, &ph, bin).expect("listen");
        assert_eq!(listen, ["l", "--send-audio", "tone:440", "--send-video"]);
        let (dial, _) = command(&m, Role::Dial, &m, &s, &ph, bin).expect("dial");
        assert_eq!(
            dial,
            ["d", "ow1.t", "--send-audio", "tone:1000", "--send-video"]
        );
        // A pair where one side lacks the capability: no media option on either side.
        let (listen, _) = command(&m, Role::Listen, &plain, &s, &ph, bin).expect("listen");
        assert_eq!(listen, ["l"]);
        let (dial, _) = command(&m, Role::Dial, &plain, &s, &ph, bin).expect("dial");
        assert_eq!(dial, ["d", "ow1.t"]);
    }
}
